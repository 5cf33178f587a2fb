"""An outline's JSON as the model writes it: where each complete section ends, and a loop.

A small model drafting a long outline can fall into writing one section again and again (its
title or main point word for word), to the outline's token limit: on the default model, a
5,000-word job's outline ran to 2,608 tokens, a dozen sections of them one main point repeated.
Once a section repeats an earlier one and the sections before it are enough, the outline is
closed before it, so the loop costs one section, not the rest of the limit.
"""

from __future__ import annotations

import json

from lwlocal.write.faults import normal_words

CLOSE = "]}"  # what closes the outline after a section: the sections' list, then the object


class OutlineStream:
    """Follows the outline's JSON (``{"sections": [{...}, ...]}``, as the outline's schema
    has it) piece by piece; ``looped`` once a section repeats an earlier one's title or main
    point after at least ``fewest`` sections."""

    def __init__(self, fewest: int) -> None:
        self.fewest = fewest
        self.reset()

    def reset(self) -> None:
        """Start again: a new reply."""
        self.text = ""
        self.looped = False
        self._kept_end = 0  # where the last section kept ends in ``text``
        self._seen: set[tuple[str, ...]] = set()
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
        keys = [tuple(normal_words(str(section.get(field, ""))))
                for field in ("title", "main_point")]
        if any(key and key in self._seen for key in keys) and self._kept >= self.fewest:
            self.looped = True
            return
        self._seen.update(key for key in keys if key)
        self._kept, self._kept_end = self._kept + 1, end
