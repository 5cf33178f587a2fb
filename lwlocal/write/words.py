"""Counting length the way LongBench-Write does: English words plus Chinese characters."""

from __future__ import annotations

import re

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_UNIT = re.compile(rf"[{_CJK}]|[^\s{_CJK}]+")
_SENTENCE_END = re.compile(r"[.!?。！？…][\"'”’)\]]*\s*$|\n\s*$")


def count_words(text: str) -> int:
    """Words of non-CJK text plus each CJK character."""
    return len(_UNIT.findall(text))


def ends_sentence(text: str) -> bool:
    """Whether ``text`` ends at a sentence boundary (or a line break)."""
    return bool(_SENTENCE_END.search(text))
