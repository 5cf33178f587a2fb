"""The outline of an AgentWrite job: prompt, JSON schema for constrained decoding, parsing,
word budgets normalised to the requested total."""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lwlocal.util.errors import LwlocalError

MAX_SECTIONS = 40
MAX_SECTION_WORDS = 1000  # the LongWriter paper keeps each paragraph within 200-1,000 words
MIN_SECTION_WORDS = 200
UNDERSHOOT = 0.8  # a section may not end before this share of its budget


def section_floor(words: int) -> int:
    """The fewest words a section of ``words`` may end at; one under it came out short."""
    return int(words * UNDERSHOOT)
MAX_WORDS = MAX_SECTIONS * MAX_SECTION_WORDS  # the longest outline
BUDGET_CAP = 10**6  # larger word counts read as this (normalising brings them in line)
TITLE_CHARS = 80
MAIN_POINT_CHARS = 400
_NUMBERING = re.compile(r"^(section|paragraph|part|chapter)\s*\d+\s*[:.\-–—]*\s*", re.IGNORECASE)

PLAN_PROMPT = """\
I need you to help me break down the following long-form writing instruction into \
{lo_hi} sections. Each section guides the writing of one part of the text and has a short \
title, its main point described in detail, and a word count. The word counts should add up \
to about {words} words. The writing instruction is as follows:

{prompt}

Answer with JSON only: {{"sections": [{{"title": ..., "main_point": ..., "words": ...}}, ...]}}. \
Make sure the sections are clear and specific and together cover the entire instruction, and \
give every section a short title of its own about the subject."""


@dataclass
class Section:
    """One section of the outline: what it says and how many words it gets."""

    title: str
    main_point: str
    words: int


@dataclass
class Outline:
    """The plan of a document: the instruction, the total words and the sections."""

    prompt: str
    words: int
    sections: list[Section]
    changes: list[str] = field(default_factory=list)  # what the outline's check mended

    @property
    def planned_words(self) -> int:
        return sum(s.words for s in self.sections)

    def as_dict(self) -> dict[str, Any]:
        changes = {"changes": self.changes} if self.changes else {}
        return {"prompt": self.prompt, "words": self.words,
                "sections": [asdict(s) for s in self.sections], **changes}

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), ensure_ascii=False, indent=2)

    def as_text(self) -> str:
        """The outline as the numbered list the writing prompt shows the model."""
        return "\n".join(
            f"{i}. {s.title}: {s.main_point} (about {s.words} words)"
            for i, s in enumerate(self.sections, 1)
        )


def section_range(words: int) -> tuple[int, int]:
    """How many sections a document of ``words`` words may have (fewest, most)."""
    lo = min(MAX_SECTIONS, max(1, math.ceil(words / MAX_SECTION_WORDS)))
    hi = min(MAX_SECTIONS, max(lo, round(words / 150), 2 if words >= 200 else 1))
    return lo, hi


def outline_prompt(prompt: str, words: int, n_sections: tuple[int, int]) -> str:
    lo, hi = n_sections
    lo_hi = str(lo) if lo == hi else f"{lo} to {hi}"
    return PLAN_PROMPT.format(lo_hi=lo_hi, words=words, prompt=prompt)


def section_schema() -> dict[str, Any]:
    """JSON schema of one outline section."""
    return {
        "type": "object",
        "properties": {
            "title": {"type": "string", "minLength": 1, "maxLength": TITLE_CHARS},
            "main_point": {"type": "string", "minLength": 1, "maxLength": MAIN_POINT_CHARS},
            "words": {"type": "integer"},
        },
        "required": ["title", "main_point", "words"],
    }


def outline_schema(n_sections: tuple[int, int]) -> dict[str, Any]:
    """JSON schema the plan is decoded under, so any model gives a parseable outline."""
    lo, hi = n_sections
    return {
        "type": "object",
        "properties": {
            "sections": {"type": "array", "items": section_schema(), "minItems": lo,
                         "maxItems": hi}
        },
        "required": ["sections"],
    }


def max_outline_tokens(n_sections: tuple[int, int]) -> int:
    """A token budget that a complete outline of the most sections fits in."""
    return 64 + n_sections[1] * (TITLE_CHARS + MAIN_POINT_CHARS + 40) // 2


def normalise_budgets(raw: list[int], total: int) -> list[int]:
    """Scale the model's word counts to add up to ``total`` exactly.

    Missing or silly counts (zero, negative, wildly off the others) are clamped to between a
    quarter and four times the median, so one bad number cannot starve the other sections.
    """
    if not raw:
        raise ValueError("an outline needs at least one section")
    positive = sorted(w for w in raw if w > 0)
    median = positive[len(positive) // 2] if positive else 1
    weights = [min(max(w, median / 4), median * 4) for w in raw]
    scaled = [w * total / sum(weights) for w in weights]
    budgets = [math.floor(x) for x in scaled]
    by_remainder = sorted(range(len(raw)), key=lambda i: scaled[i] - budgets[i], reverse=True)
    for i in by_remainder[: total - sum(budgets)]:
        budgets[i] += 1
    return budgets


def parse_outline(data: Any, prompt: str, words: int | None, source: str, *,
                  as_saved: bool = False) -> Outline:
    """Build an outline from decoded JSON (``{"sections": [...]}`` or a bare list).

    Budgets are normalised to ``words`` (to the sum of the given budgets when ``None``), but
    ``as_saved`` (a job's own outline, checked when it was planned) keeps budgets that are
    all positive and add up to ``words`` as they are: normalising again would move a budget
    the check left under a quarter of the median, and a resumed job would ask for other
    lengths than the uninterrupted one did. ``source`` names where the JSON came from in
    errors.
    """
    items = data.get("sections") if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise LwlocalError(f"{source}: outline has no list of sections")
    sections = []
    for i, item in enumerate(items, 1):
        if not isinstance(item, dict):
            raise LwlocalError(f"{source}: section {i} is not an object")
        title = str(item.get("title") or "").strip() or f"Section {i}"
        main_point = str(item.get("main_point") or "").strip()
        if not main_point:
            raise LwlocalError(f"{source}: section {i} has no main_point")
        count = item.get("words") or 0
        try:
            budget = min(int(count), BUDGET_CAP)
        except (TypeError, ValueError, OverflowError) as exc:
            raise LwlocalError(f"{source}: section {i}'s word count {count!r} is not a finite "
                               "number") from exc
        sections.append(Section(title=title, main_point=main_point, words=budget))
    raw = [s.words for s in sections]
    words = words or sum(w for w in raw if w > 0)
    if words <= 0:
        raise LwlocalError(f"{source}: outline has no positive word counts")
    kept = as_saved and all(w > 0 for w in raw) and sum(raw) == words
    for section, budget in zip(sections, raw if kept else normalise_budgets(raw, words),
                               strict=True):
        section.words = budget
    changes = data.get("changes") if isinstance(data, dict) else None
    return Outline(prompt=prompt, words=words, sections=sections,
                   changes=[str(c) for c in changes] if isinstance(changes, list) else [])


def parse_model_outline(text: str, prompt: str, words: int) -> Outline:
    """Parse the JSON the model produced while planning."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LwlocalError(f"model outline: not valid JSON ({exc})") from exc
    outline = parse_outline(data, prompt, words, "model outline")
    for section in outline.sections:  # models like to number their titles; the document does
        section.title = _NUMBERING.sub("", section.title) or section.title
    return outline


def load_outline(path: Path, prompt: str | None = None, words: int | None = None) -> Outline:
    """Read an outline file in the format ``write --outline-only --json`` prints.

    ``prompt`` and ``words`` given on the command line take precedence over the file's; when
    ``words`` is not given, the file's total (or the sum of its budgets) is kept.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise LwlocalError(f"{path}: cannot read outline ({exc.strerror})") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LwlocalError(f"{path}: outline is not valid JSON ({exc})") from exc
    meta = data if isinstance(data, dict) else {}
    prompt = prompt or str(meta.get("prompt") or "")
    if not prompt:
        raise LwlocalError(f"{path}: outline has no prompt and none was given")
    words = words or meta.get("words")
    if words is not None and not (isinstance(words, int) and 0 < words <= MAX_WORDS):
        raise LwlocalError(f"{path}: the total word count {words!r} must be a whole number "
                           f"from 1 to {MAX_WORDS}")
    return parse_outline(data, prompt, words, str(path))
