"""The writer's watch over a section as it streams: the first fault (see
:mod:`lwlocal.write.faults`) is reported as soon as it can be told, so the writer can cut the
text back to where that sentence starts and write it again; and the tidying of a finished
section (wrapping quotation marks, its title repeated on its first line)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from lwlocal.write.faults import (
    LOOP_WORDS,
    OPENINGS_SAID,
    QUOTES,
    SENTENCE_BODY,
    SENTENCE_END,
    Fault,
    Memory,
    Stems,
    is_garbled,
    is_heading,
    is_talk,
    normal_words,
    opens_as_heading,
    opens_with_quote,
    opens_with_title,
    sentence_fault,
    sentences,
    starts_line,
    title_run_in,
)
from lwlocal.write.words import count_words

EARLY_WORDS = 8  # talk is looked for in the start of a sentence up to this many words
TRIES_PER_CUT = 3  # other starts tried where a fault was cut before the section ends there
TRIES_SHORT = 8  # ... and where ending would leave the section short of its floor
REPAIRS_PER_SECTION = 16  # faults a section may have repaired before it ends where it is ...
REPAIR_WORDS = 500  # ... for each this many words of its budget (a 1,500-word section: 48)
# a line of list numbers alone ("1. 1.", "3. 4"; each number once: "1111…x" cannot take the
# matcher exponential time)
_NUMBERS_ONLY = re.compile(r"^\s*\d+(?:(?:[.)]\s*|\s+)\d+)*[.)]?\s*$")
_LIST_ITEM = re.compile(r"^([ \t]*)(\d{1,3})([.)])(?=[ \t])", re.MULTILINE)  # "2. " opening a line
NUMBERS_IN_A_ROW = 2  # sentences of list numbers alone in a row that are a loop
# a sentence is closed once what follows its end is no letter or digit (or nothing yet)
_CLOSED = re.compile(rf"{SENTENCE_BODY}(?:{SENTENCE_END}(?![^\W_])|[。！？]|\n+)")


@dataclass(frozen=True)
class Repair:
    """What the writer did about a fault: ``resampled`` (cut back and written again),
    ``ended`` (the section ends before it), ``dropped`` (cut, and writing went on) or
    ``tidied`` (marks removed from a finished section)."""

    kind: str
    action: str
    text: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "action": self.action, "text": self.text[:200]}


def repairs_for(words: int) -> int:
    """The faults a section of ``words`` words may have repaired: ``REPAIRS_PER_SECTION`` for
    each ``REPAIR_WORDS`` words begun."""
    return REPAIRS_PER_SECTION * max(1, math.ceil(words / REPAIR_WORDS))


class SectionGuard:
    """Finds the first fault of section ``index`` as its text arrives piece by piece.

    ``earlier`` holds what the sections before it said, and ``avoid`` the starts the section
    may not begin with (a section written again: the old one). Without
    ``boundaries`` (a one-pass document, which has headings of its own) a heading is no fault.
    It also decides what the writer does about each fault (:meth:`decide`) and keeps the
    record (``repairs``).
    """

    def __init__(self, index: int, titles: Sequence[str], earlier: Memory, *,
                 boundaries: bool = True, avoid: Sequence[str] = (),
                 repairs: int = REPAIRS_PER_SECTION) -> None:
        self.boundaries = boundaries
        self.most_repairs = repairs
        self.title = titles[index - 1]
        self.others = [t for i, t in enumerate(titles, 1) if i != index]
        self.earlier = earlier
        self.repairs: list[Repair] = []
        self.avoid = list(avoid)  # starts that went wrong where the text now ends
        self._at = ""
        self.restart("")

    def restart(self, text: str) -> None:
        """Watch again from ``text``, all of it taken as good (where it ends elsewhere than
        before, no start is to be avoided there yet)."""
        if text.rstrip() != self._at:
            self.avoid, self._at = [], text.rstrip()
        self.text = text
        self.fault: Fault | None = None
        self._own = Memory([text])
        self._stems = Stems()
        for _, sentence in sentences(text):
            self._stems.add(sentence)
        self._words = normal_words(text)
        self._closed = len(text)
        self._numbers = 0  # list numbers alone ("5. 6. 7.") in a row, just before

    def add(self, piece: str) -> Fault | None:
        """Take the next piece; the first fault found so far (None while there is none)."""
        if self.fault is not None:
            return self.fault
        self.text += piece
        while self.fault is None:
            match = _CLOSED.match(self.text, self._closed)
            if match is None or not match.group():
                break
            self.fault = self._check(match.group(), self._closed, closed=True)
            self._own.add(match.group())
            self._stems.add(match.group())
            self._words += normal_words(match.group())
            self._closed = match.end()
        if self.fault is None and self._closed < len(self.text):
            self.fault = self._check(self.text[self._closed:], self._closed, closed=False)
        return self.fault

    def decide(self, floor: int) -> Repair:
        """What to do about the fault found (recorded in ``repairs``): ``resampled``, the text
        goes back to the fault's start and goes on from there, not beginning as it did
        (``avoid``); ``ended``, the section ends there: at a boundary past the section's
        ``floor`` (in words), after ``TRIES_PER_CUT`` starts at one place or the section's
        ``repairs`` (:func:`repairs_for`); ``kept``, where ending would leave the section short
        of its ``floor`` (after ``TRIES_SHORT`` starts there): the text stays, and the writing
        goes on from it; but garbled text is never kept: the section ends short instead."""
        fault = self.fault
        assert fault is not None, "decide() is for a fault found"
        before = self.text[:fault.start]
        if before.rstrip() != self._at:  # a new place: no start went wrong here yet
            self.avoid, self._at = [], before.rstrip()
        self.avoid.append(self.text[fault.start:])
        short = count_words(before) < floor  # ending here would leave the section short
        tries = TRIES_SHORT if short else TRIES_PER_CUT
        ending = ((fault.kind == "boundary" and not short) or len(self.avoid) > tries
                  or len(self.repairs) >= self.most_repairs)
        keep = short and fault.kind != "garbled"
        action = "resampled" if not ending else "kept" if keep else "ended"
        self.repairs.append(Repair(fault.kind, action, fault.text))
        return self.repairs[-1]

    def _check(self, sentence: str, offset: int, closed: bool) -> Fault | None:
        """The fault of a sentence (``closed``) or of the start of one, at ``offset``."""
        if not sentence.strip():
            return None
        begins = offset + len(sentence) - len(sentence.lstrip())
        # cut back to the end of what came before, so that the next start (the one to
        # avoid, too) takes the space or line break before the sentence with it
        start, text = len(self.text[:begins].rstrip()), sentence.strip()
        before = self.text[:offset]
        if not before.strip() or _NUMBERS_ONLY.match(before):  # the first words, or item's
            if opens_with_quote(sentence):
                return Fault("quote", start, text)
            if opens_with_title(sentence, self.title, whole=closed) or any(
                    opens_as_heading(sentence, title) for title in self.others):
                return Fault("title", 0, (before + sentence).strip())  # with a list number
        if closed:
            self._numbers = self._numbers + 1 if _NUMBERS_ONLY.match(sentence) else 0
            if self._numbers >= NUMBERS_IN_A_ROW:  # counting instead of writing: a loop
                return Fault("repeat", start, text)
            at_line_start = self.boundaries and starts_line(self.text, begins)
            kind = sentence_fault(sentence, at_line_start, self.others, self.earlier,
                                  self._words, self.title)
            openings = (self.earlier.openings_said(sentence)
                        + self._own.openings_said(sentence))
            if kind is None and (self._own.repeats(sentence, self._words)
                                 or openings >= OPENINGS_SAID or self._stems.loops(sentence)):
                kind = "repeat"
            return Fault(kind, start, text) if kind else None
        if self.boundaries and starts_line(self.text, begins) and is_heading(sentence.lstrip()):
            return Fault("boundary", start, text)
        if is_garbled(sentence, streaming=True):  # as soon as the glued chunk is told
            return Fault("garbled", start, text)
        words = normal_words(sentence)
        if len(words) <= EARLY_WORDS and is_talk(sentence):  # the rest: when it ends
            return Fault("talk", start, text)
        said, new = [*self._words[-LOOP_WORDS:], *words], min(2, len(words))
        if new and (self.earlier.ends_in_run(said, new) or self._own.ends_in_run(said, new)):
            return Fault("repeat", start, text)
        return None


# a heading the model made itself, wrapped whole ("<<The Importance of Cities: ...>>", a trees
# essay of this round)
_WRAPPED_HEADING = re.compile(r"^(?:<<[^<>\n]{1,160}>>|«[^«»\n]{1,160}»|\[[^\[\]\n]{1,160}\])$")


def _numbered_from_one(body: str) -> str | None:
    """``body`` with its list numbered from 1 where it counts on from an earlier section's
    (section 2 of ``make demo`` opened "2." after section 1's "1." and "2."), else None."""
    items = _LIST_ITEM.findall(body)
    numbers = [int(number) for _, number, _ in items]
    if not numbers or numbers[0] <= 1 or numbers != list(range(numbers[0],
                                                             numbers[0] + len(numbers))):
        return None
    shift = numbers[0] - 1
    return _LIST_ITEM.sub(lambda m: f"{m[1]}{int(m[2]) - shift}{m[3]}", body)


def tidy(text: str, title: str) -> tuple[str, list[Repair]]:
    """A finished section without the quotation marks wrapping it, lines of list numbers
    alone ("1. 1."), a list numbered on from an earlier section's, or its title repeated on
    its first line (or a heading of its own wrapped in << >>, « » or brackets there) or run
    into its first sentence after a colon, and what was removed."""
    repairs = []
    body = text.strip()
    if len(body) > 1 and body[0] in QUOTES and body[-1] in QUOTES:
        repairs.append(Repair("quote", "tidied", body[:80]))
        body = body[1:-1].strip()
    lines = body.split("\n")
    numbers = [line for line in lines if _NUMBERS_ONLY.match(line)]
    if numbers:  # "1. 1." "3. 4": list numbers with nothing after them
        repairs.append(Repair("numbers", "tidied", " / ".join(numbers)))
        body = re.sub(r"\n{3,}", "\n\n", "\n".join(
            line for line in lines if not _NUMBERS_ONLY.match(line))).strip()
    if (renumbered := _numbered_from_one(body)) is not None:  # "2." opening a section
        counted = " ".join(number + mark for _, number, mark in _LIST_ITEM.findall(body))
        repairs.append(Repair("numbers", "tidied", f"{counted} numbered from 1"))
        body = renumbered
    first, _, rest = body.partition("\n")
    if rest.strip() and (_WRAPPED_HEADING.match(first.strip()) or opens_with_title(
            first, title) and len(normal_words(first)) <= len(normal_words(title)) + 2):
        repairs.append(Repair("title", "tidied", first))
        body = rest.strip()
    if heading := title_run_in(body, title):  # the title run into the first sentence
        repairs.append(Repair("title", "tidied", body[:heading].strip()))
        body = body[heading:].strip()
    return body, repairs
