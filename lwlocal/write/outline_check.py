"""An outline checked before any section is written: a title alike to an earlier one, or about
the writing (or a placeholder such as "[Section 1]"), is replaced by one made from its main
point; where that gives no title of its own, the section is merged into the one it repeats (or
its neighbour). What was changed is
said in words, for the command line, the terminal app and the journal."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import replace

from lwlocal.write.faults import REQUEST_VERB, OutlineProblem, normal_words, outline_problems
from lwlocal.write.outline import (
    MAIN_POINT_CHARS,
    MAX_SECTION_WORDS,
    MIN_SECTION_WORDS,
    Outline,
    Section,
)

LIST_NUMBERS = re.compile(r"^\s*(?:(?:\d{1,2}|[ivx]{1,4})[.)]\s*)+", re.IGNORECASE)  # "1. 3. "
# "Watering and Planting," "To keep your garden, eat what you can." and "Introduction to T-SNE
# (2)" as titles; a full stop after a lower-case word or a comma ("… approach,.") alone
# ("U.S.", "etc." and "..." stay)
TRAILING_MARKS = re.compile(r"(?:[\s,;:]|\(\d{1,2}\)|(?<=,)\.|"
                            r"(?<=[a-z]{2})(?<![Ee]tc|[Ii]nc|[Ll]td)(?<![Vv]s)\.)+$")
# a title that goes on past a sentence ("How they can improve your life, by helping others. The
# importance of them for a", cut at the schema's 80 characters): its first sentence, of two words
# or more, ending on a lower-case word ("U.S. Roads" stays whole)
_FIRST_SENTENCE = re.compile(r"^(\S+\s.*?[a-z]{2})[.!?]\s+[A-Z]")
TITLE_WORDS = 8  # a title made from a main point: its first clause, this many words at most
_CLAUSE = re.compile(r"[^.;:\n(]+")
# words a title made by cutting a clause short may not end on ("... the origin and", "It is
# the best way to have your")
_DANGLING = re.compile(r"(?:\s+(?:a|an|and|as|at|by|for|from|in|into|of|on|or|that|the|to|"
                       r"which|who|with|your|my|our|their|his|her|its))+$", re.IGNORECASE)
# a word no title ends on: one the schema's 80 characters cut it short on ("… Guide to Boiler,
# Brewing, and", a coffee guide's)
_TITLE_DANGLING = re.compile(r"(?:[\s,;:]+(?:and|or|a|an|the|of))+[\s,;:]*$")  # "Vitamin A" stays
_BRACKETS = re.compile(r"\[[^\]]*\]|\{[^}]*\}|<[^>]*>")
# the answer's JSON run into a title ("Bicycle's past, present & future', 'besides its own
# unique story' }, {", "… the Guitar and Music}."): from a brace, or from a quote closing a string
# before one ("The 'Yes', 'No' and 'Maybe' of Bread" stays whole)
_JSON_DEBRIS = re.compile(r"""\s*(?:['"]\s*[,:][^{}]*)?[{}].*$""")
INSTRUCTION_TITLE_WORDS = 12  # a title made from the instruction: this many words at most
_INSTRUCTION_CLAUSES = re.compile(r"[,.;:!?，。；：！？]")
# the request before the subject: "Write a 1000-word essay on ", "Please write me a guide to "
_REQUEST = re.compile(rf"^\s*{REQUEST_VERB}\s+"
                      r"(?:me\s+)?(?:an?\s+|the\s+|one\s+)?(?:[\w-]+\s+){0,4}?(?:essay|guide|"
                      r"story|report|article|post|introduction|plan|newsletter|text|piece|note|"
                      r"overview|description|tutorial)\s+(?:on|about|of|for|to|that)\s+",
                      re.IGNORECASE)


def problems(outline: Outline) -> list[OutlineProblem]:
    """What is wrong with ``outline`` (see :func:`lwlocal.write.faults.outline_problems`)."""
    return outline_problems([s.title for s in outline.sections],
                            [s.main_point for s in outline.sections], outline.prompt)


def _title_from(point: str, most: int = TITLE_WORDS) -> str | None:
    """A title made of a main point's first clause (``most`` words at most), or None when it
    gives none."""
    clause = _CLAUSE.match(_BRACKETS.sub("", point).strip())
    words = clause.group().split()[:most] if clause else []
    title = _DANGLING.sub("", TRAILING_MARKS.sub("", " ".join(words))).strip()
    return title.capitalize() if normal_words(title) else None


def _title_from_instruction(prompt: str) -> str | None:
    """A title made of the instruction's first clause that is about the subject, the request
    itself left out ("Write a 1000-word essay on why cities …" gives "Why cities …"; "写一篇
    800字的短篇故事，讲述…" its second clause), or None."""
    for clause in _INSTRUCTION_CLAUSES.split(prompt):
        title = _title_from(_REQUEST.sub("", clause).strip(), INSTRUCTION_TITLE_WORDS)
        if title and not outline_problems([title], [prompt]):
            return title
    return None


def _merged(into: Section, other: Section, keep_point: bool) -> Section:
    """``into`` with ``other``'s words, and its main point where ``keep_point`` (and not said
    in ``into``'s already: "Pricing of bread Pricing of bread …", a 10,000-word outline)."""
    said = normal_words(into.main_point)
    new = normal_words(other.main_point)
    again = any(said[i:i + len(new)] == new for i in range(len(said) - len(new) + 1))
    point = (f"{into.main_point} {other.main_point}" if keep_point and not again
             else into.main_point)
    return replace(into, main_point=point[:MAIN_POINT_CHARS].strip(),
                   words=into.words + other.words)


def _first_sentence(title: str) -> str:
    first = _FIRST_SENTENCE.match(title)
    return first[1] if first else title


# what is cut from a title before its problems are looked for, in this order, and why
_TITLE_CUTS: tuple[tuple[Callable[[str], str], str], ...] = (
    (lambda t: TRAILING_MARKS.sub("", LIST_NUMBERS.sub("", t)).strip(),
     "its list numbers or trailing marks dropped"),
    (lambda t: TRAILING_MARKS.sub("", _JSON_DEBRIS.sub("", t)).strip(), "the JSON run into it cut"),
    (_first_sentence, "cut at the end of its first sentence"),
    (lambda t: TRAILING_MARKS.sub("", _TITLE_DANGLING.sub("", t)).strip(),
     "the word it was cut short on dropped"),
)


def repair(outline: Outline) -> tuple[Outline, list[str]]:
    """``outline`` with its problems mended, and a line for each change. Each pass mends the
    first problem, so the lines name sections as they were numbered at that time."""
    changes: list[str] = []
    sections = list(outline.sections)
    for i in range(len(sections)):
        for cut, why in _TITLE_CUTS:
            was = sections[i].title
            shorter = cut(was)
            if shorter and shorter != was:
                changes.append(f"section {i + 1}: '{was}' titled '{shorter}' ({why})")
                sections[i] = replace(sections[i], title=shorter)
    for _ in range(len(outline.sections)):
        found = problems(replace(outline, sections=sections))
        if not found or len(sections) == 1 and found[0].kind == "title":
            break
        problem, titles = found[0], [s.title for s in sections]
        i = problem.index - 1
        title = _title_from(sections[i].main_point)
        if title and title not in titles and not outline_problems(
                [*titles[:i], title], [s.main_point for s in sections[:i + 1]],
                outline.prompt):
            changes.append(f"{problem.describe(titles)}: titled '{title}' from its main point")
            sections[i] = replace(sections[i], title=title)
            continue
        into = problem.like - 1 if problem.like is not None else (i - 1 if i else 1)
        if len(sections) == 1:  # nothing to merge into: the instruction says what it is about
            title = _title_from_instruction(outline.prompt)
            if title is not None:
                changes.append(f"{problem.describe(titles)}: titled '{title}' from the "
                               "instruction, and given it as its main point")
                sections[0] = replace(sections[0], title=title,
                                      main_point=outline.prompt[:MAIN_POINT_CHARS])
            break
        changes.append(f"{problem.describe(titles)}: merged into section {into + 1}")
        sections[into] = _merged(sections[into], sections[i], problem.kind == "title")
        del sections[i]
    budgets = bounded([s.words for s in sections])
    if budgets != [s.words for s in sections]:
        changes.append(f"word budgets {', '.join(str(s.words) for s in sections)} brought to "
                       f"{', '.join(map(str, budgets))}")
        sections = [replace(s, words=w) for s, w in zip(sections, budgets, strict=True)]
    return replace(outline, sections=sections), changes


def bounded(budgets: list[int]) -> list[int]:
    """Word budgets with the same total, each within the LongWriter paper's 200 to 1,000
    words where the total allows (else within half and twice the average): all scaled by
    one factor, then held to those bounds, the factor chosen (by bisection) so that the total
    stays."""
    total, n = sum(budgets), len(budgets)
    average = total / n
    low = min(MIN_SECTION_WORDS, average / 2)
    high = max(MAX_SECTION_WORDS, average) if average > MAX_SECTION_WORDS / 2 else average * 2

    def held(scale: float) -> list[float]:
        return [min(max(b * scale, low), high) for b in budgets]

    lo, hi = 0.0, float(total + 1)  # at this factor every budget of a word or more is high
    for _ in range(60):  # the sum grows with the factor: halve the interval until it is met
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if sum(held(mid)) < total else (lo, mid)
    out = held(hi)
    whole = [math.floor(b) for b in out]
    for i in sorted(range(n), key=lambda i: out[i] - whole[i], reverse=True):
        if sum(whole) >= total:
            break
        whole[i] += 1
    return whole
