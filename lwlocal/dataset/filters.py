"""What keeps a document out of the set, as the LongWriter paper filtered LongWriter-6k: its
length out of range (counted as LongBench-Write counts), a language other than the
instruction's, the review's faults (boundary leaks, talk about the writing, repeats and loops)
over a threshold; and instructions given before, word for word or nearly."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lwlocal.bench.scoring import output_length
from lwlocal.util.errors import SettingError
from lwlocal.write.batch import BatchItem
from lwlocal.write.faults import ngrams, normal_words
from lwlocal.write.words import language

LANGUAGES = {"en": "English", "zh": "Chinese"}


@dataclass(frozen=True)
class Rejection:
    """Why an item is left out: the filter's name and, in words, what it found."""

    reason: str
    why: str


@dataclass(frozen=True)
class Filters:
    """The thresholds: output length in words (Chinese characters counted one each), the
    boundary leaks allowed, the shares of sentences that may talk about the writing or repeat
    one said before, and the share of word pairs that makes two instructions one."""

    min_words: int = 2000
    max_words: int = 32000
    same_language: bool = True
    max_boundary: int = 0
    max_talk: float = 0.05
    max_repeats: float = 0.05
    near_duplicate: float = 0.8

    def check(self) -> None:
        """Refuse thresholds that cannot be met, naming the setting."""
        if self.min_words < 0 or self.max_words < self.min_words:
            raise SettingError(f"{{min_words}} {self.min_words} and {{max_words}} "
                               f"{self.max_words}: need 0 <= min <= max")
        if self.max_boundary < 0:
            raise SettingError(f"{{max_boundary}} {self.max_boundary}: must be at least 0")
        for name in ("max_talk", "max_repeats"):
            if not 0 <= getattr(self, name) <= 1:
                raise SettingError(f"{{{name}}} {getattr(self, name)}: a share, from 0 to 1")
        if not 0 < self.near_duplicate <= 1:
            raise SettingError(f"{{near_duplicate}} {self.near_duplicate}: a share, above 0 "
                               "and at most 1")

    def judge(self, instruction: str, document: str, review: dict[str, Any]) -> list[Rejection]:
        """Every filter the document fails (``review``: its review's totals, as
        :meth:`lwlocal.write.review.Review.as_dict` gives them); none: kept."""
        found = []
        words = output_length(document)
        if words < self.min_words:
            found.append(Rejection("length", f"{words:,} words, under {self.min_words:,}"))
        elif words > self.max_words:
            found.append(Rejection("length", f"{words:,} words, over {self.max_words:,}"))
        asked, written = language(instruction), language(document)
        if self.same_language and asked != written:
            found.append(Rejection("language", f"written in {LANGUAGES[written]}, asked in "
                                               f"{LANGUAGES[asked]}"))
        if review["boundary"] > self.max_boundary:
            found.append(Rejection("boundary", f"{review['boundary']} boundary leaks, over "
                                               f"{self.max_boundary}"))
        for reason, share, limit, what in (
                ("talk", review["talk_share"], self.max_talk, "talk about the writing"),
                ("repeats", review["repeated_share"], self.max_repeats, "repeat earlier ones")):
            if share > limit:
                found.append(Rejection(reason, f"{share:.1%} of sentences {what}, over "
                                               f"{limit:.1%}"))
        return found


def duplicate_instructions(items: Sequence[BatchItem], near: float) -> dict[str, Rejection]:
    """The items (by id) whose instruction an earlier item gave already: in the same words
    (case and punctuation aside), or sharing at least ``near`` of their word pairs (Jaccard).
    The first of each is kept."""
    exact: dict[tuple[str, ...], str] = {}
    pairs_of: dict[str, set[tuple[str, ...]]] = {}
    having: dict[tuple[str, ...], list[str]] = {}  # a word pair -> the kept items with it
    found = {}
    for item in items:
        words = tuple(normal_words(item.prompt))
        if words in exact:
            found[item.id] = Rejection("duplicate", f"the instruction of {exact[words]}")
            continue
        pairs = ngrams(words, 2) or {words}
        shared = Counter(other for pair in pairs for other in having.get(pair, ()))
        alike = [(n / len(pairs | pairs_of[other]), other) for other, n in shared.items()]
        best = max(alike, default=(0.0, ""))
        if best[0] >= near:
            found[item.id] = Rejection("near-duplicate", f"{best[0]:.0%} of its word pairs "
                                                         f"are {best[1]}'s")
            continue
        exact[words], pairs_of[item.id] = item.id, pairs
        for pair in pairs:
            having.setdefault(pair, []).append(item.id)
    return found
