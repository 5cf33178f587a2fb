"""LongBench-Write's length score and how it counts length."""

from __future__ import annotations

import re

_CHINESE = re.compile(r"[\u4e00-\u9fff]")
_ENGLISH = re.compile(r"\b[a-zA-Z]+\b")


def output_length(text: str) -> int:
    """English words plus Chinese characters, exactly as LongBench-Write counts them (numbers
    and punctuation do not count, unlike the writer's own budget count)."""
    return len(_CHINESE.findall(text)) + len(_ENGLISH.findall(text))


def length_score(output: int, required: int) -> float:
    """S_l: 100 on target, falling to 0 at 4x too long or, steeper, at 1/3 of the length."""
    if output > required:
        return 100 * max(0.0, 1 - (output / required - 1) / 3)
    if output == 0:
        return 0.0
    return 100 * max(0.0, 1 - (required / output - 1) / 2)
