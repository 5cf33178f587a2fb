"""An outline's JSON as the model writes it: where each complete section ends, and a loop.

A small model drafting a long outline can fall into writing one section again and again (its
title, or a main point of a sentence, in the same words), to the outline's token limit: the
default model's outline of `benchmarks/time_plan.py`'s 5,000-word job took 6,771 tokens in its
three tries, a dozen sections of each one main point again. Once a section repeats an earlier
one and the sections before it are enough, the outline is closed before it, so the loop costs
one section, not the rest of the limit.
"""

from __future__ import annotations

import json

from lwlocal.write.faults import NEAR_MIN_WORDS, normal_words

CLOSE = "]}"  # what closes the outline after a section: the sections' list, then the object


class OutlineStream:
    """Follows the outline's JSON (``{"sections": [{...}, ...]}``, as the outline's schema
    has it) piece by piece; ``looped`` once a section repeats an earlier one's title, or its
    main point (of ``NEAR_MIN_WORDS`` words or more: "Tips." twice is no loop), after at least
    ``fewest`` sections; ``repeat`` then says which section, and which one it repeats."""

    def __init__(self, fewest: int) -> None:
        self.fewest = fewest
        self.reset()

    def reset(self) -> None:
        """Start again: a new reply."""
        self.text = ""
        self.looped = False
        self._kept_end = 0  # where the last section kept ends in ``text``
        self.repeat: tuple[int, int] | None = None  # (the section, the earlier one), from 1
        self._seen: dict[tuple[str, tuple[str, ...]], int] = {}  # (field, words) -> section
        self._kept = 0
        self._depth, self._in_string, self._escaped, self._start = 0, False, False, 0

    def add(self, piece: str) -> None:
        for char in piece:
            self._scan(char)
            self.text += char
            if self.looped:
                return

    def closed(self) -> str:
        """The outline up to the last section before the loop, closed."""
        return self.text[:self._kept_end] + CLOSE

    def _scan(self, char: str) -> None:
        if self._in_string:
            if self._escaped:
                self._escaped = False
            elif char == "\\":
                self._escaped = True
            elif char == '"':
                self._in_string = False
            return
        if char == '"':
            self._in_string = True
        elif char in "{[":
            self._depth += 1
            if self._depth == 3:  # the outline's object, its list, a section
                self._start = len(self.text)
        elif char in "}]":
            if char == "}" and self._depth == 3:
                self._section(self.text[self._start:] + char, len(self.text) + 1)
            self._depth -= 1

    def _section(self, text: str, end: int) -> None:
        try:
            section = json.loads(text)
        except json.JSONDecodeError:
            return
        if not isinstance(section, dict):
            return
        said = [(field, tuple(normal_words(str(section.get(field, "")))))
                for field in ("title", "main_point")]
        keys = [(field, words) for field, words in said
                if len(words) >= (NEAR_MIN_WORDS if field == "main_point" else 1)]
        earlier = next((self._seen[key] for key in keys if key in self._seen), None)
        if earlier is not None and self._kept >= self.fewest:
            self.looped, self.repeat = True, (self._kept + 1, earlier)
            return
        self._kept, self._kept_end = self._kept + 1, end
        for key in keys:
            self._seen.setdefault(key, self._kept)
