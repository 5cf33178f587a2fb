"""A review of a document, section by section: planned and written words, sentences about the
writing, repeated sentences, garbled ones, boundary leaks, wrapping quotes and titles said
again, and what the writer repaired; with the sections worth writing again. It counts with
the detectors the writer guards with (:mod:`lwlocal.write.faults`)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lwlocal.util.errors import LwlocalError
from lwlocal.write.faults import Memory, outline_problems, section_faults, sentences
from lwlocal.write.journal import Job
from lwlocal.write.outline import section_floor
from lwlocal.write.words import count_words

WORTH_REWRITING = 0.2  # a section whose faulty sentences reach this share is worth rewriting
_HEADING = re.compile(r"^#{1,6}\s+(.*)$", re.MULTILINE)


@dataclass
class SectionReview:
    """One section's figures (``planned`` is None for a document without an outline)."""

    index: int
    title: str
    planned: int | None
    written: int
    sentences: int
    talk: int
    repeated: int
    garbled: int
    boundary: int
    quote: int
    title_repeated: int
    repaired: dict[str, int] = field(default_factory=dict)
    rewrite: bool = False

    @property
    def faults(self) -> int:
        return (self.talk + self.repeated + self.garbled + self.boundary + self.quote
                + self.title_repeated)


@dataclass
class Review:
    """A document's review: its sections and totals."""

    sections: list[SectionReview]
    repeated_titles: int
    outline_changes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        total = sum(s.sentences for s in self.sections)
        planned = [s.planned for s in self.sections if s.planned is not None]
        repaired: Counter[str] = Counter()
        for s in self.sections:
            repaired.update(s.repaired)

        def share(n: int) -> float:
            return round(n / total, 4) if total else 0.0

        talk = sum(s.talk for s in self.sections)
        repeated = sum(s.repeated for s in self.sections)
        return {
            "sections": [asdict(s) for s in self.sections],
            "words": sum(s.written for s in self.sections),
            "planned_words": sum(planned) if planned else None,
            "sentences": total,
            "talk": talk, "talk_share": share(talk),
            "repeated": repeated, "repeated_share": share(repeated),
            "garbled": sum(s.garbled for s in self.sections),
            "boundary": sum(s.boundary for s in self.sections),
            "quote": sum(s.quote for s in self.sections),
            "title_repeated": sum(s.title_repeated for s in self.sections),
            "repeated_titles": self.repeated_titles,
            "short_sections": [s.index for s in self.sections if _short(s)],
            "repaired": dict(repaired),
            "outline_changes": self.outline_changes,
            "rewrite": [s.index for s in self.sections if s.rewrite],
        }


def summary_line(review: dict[str, Any]) -> str:
    """A review's totals (:meth:`Review.as_dict`) in a line."""
    return (f"{review['words']:,} words, {review['sentences']} sentences: "
            f"{review['talk_share']:.1%} about the writing, {review['repeated_share']:.1%} "
            f"repeated, {review['garbled']} garbled, {review['boundary']} boundary leaks, "
            f"{review['repeated_titles']} repeated titles")


def short_line(indices: Sequence[int]) -> str:
    """Which sections came out short, in words: "section 2 came out short of its plan"."""
    if len(indices) == 1:
        return f"section {indices[0]} came out short of its plan"
    return f"sections {', '.join(map(str, indices))} came out short of their plan"


def _short(s: SectionReview) -> bool:
    return s.planned is not None and s.written < section_floor(s.planned)


def review(titles: Sequence[str], texts: Sequence[str | None],
           planned: Sequence[int | None] | None = None,
           repairs: Sequence[Sequence[dict[str, str]]] | None = None,
           outline_changes: Sequence[str] = ()) -> Review:
    """Review a document's sections (``texts``; None: not written yet, left out) under their
    ``titles``, with their ``planned`` words and the writer's ``repairs`` where known."""
    memory = Memory()
    reviewed = []
    for i, (title, text) in enumerate(zip(titles, texts, strict=True), 1):
        if text is None:
            continue
        kinds = Counter(f.kind for f in section_faults(text, i, titles, memory,
                                                       boundaries=len(titles) > 1))
        fixed = Counter(r.get("kind", "?") for r in (repairs[i - 1] if repairs else ()))
        section = SectionReview(
            i, title, planned[i - 1] if planned else None, count_words(text),
            len(sentences(text)), kinds["talk"], kinds["repeat"], kinds["garbled"],
            kinds["boundary"],
            kinds["quote"], kinds["title"], dict(fixed))
        section.rewrite = _short(section) or bool(section.boundary or section.quote) or (
            section.sentences > 0 and section.faults / section.sentences >= WORTH_REWRITING)
        reviewed.append(section)
    alike = sum(p.kind == "title" for p in outline_problems(list(titles), list(titles)))
    return Review(reviewed, alike, list(outline_changes))


def review_job(job: Job) -> Review:
    """The review of a job from its journal: the sections written so far."""
    outline = job.outline()
    if outline is None:
        raise LwlocalError(f"{job.id}: no outline yet, nothing to review")
    n = len(outline.sections)
    return review([s.title for s in outline.sections],
                  [job.section_text(i) for i in range(1, n + 1)],
                  [s.words for s in outline.sections],
                  [job.repairs(i) for i in range(1, n + 1)], outline.changes)


def review_file(path: Path) -> Review:
    """The review of a Markdown document: its ``#`` headings divide its sections (a document
    without any is one section)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LwlocalError(f"{path}: cannot read ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise LwlocalError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    headings = list(_HEADING.finditer(text))
    if not headings:
        return review([""], [text])
    titles = [h.group(1).strip() for h in headings]
    ends = [h.start() for h in headings[1:]] + [len(text)]
    texts = [text[h.end():end] for h, end in zip(headings, ends, strict=True)]
    return review(titles, texts)
