"""Counting length the way LongBench-Write does: English words plus Chinese characters."""

from __future__ import annotations

import functools
import re
from pathlib import Path

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_UNIT = re.compile(rf"[{_CJK}]|[^\s{_CJK}]+")
_SENTENCE_END = re.compile(r"[.!?。！？…][\"'”’)\]]*\s*$|\n\s*$")
_SENTENCE_ENDS = re.compile(r"[.!?。！？…][\"'”’)\]]*(?=\s|$)|[。！？]")


def count_words(text: str) -> int:
    """Words of non-CJK text plus each CJK character."""
    return len(_UNIT.findall(text))


def ends_sentence(text: str) -> bool:
    """Whether ``text`` ends at a sentence boundary (or a line break)."""
    return bool(_SENTENCE_END.search(text))


def trim_to_sentence(text: str) -> str:
    """``text`` up to its last sentence end (all of it when it has none)."""
    ends = [m.end() for m in _SENTENCE_ENDS.finditer(text)]
    return text[: ends[-1]] if ends else text


class WordCounter:
    """Counts words of a text that arrives in pieces, in time proportional to the pieces."""

    def __init__(self) -> None:
        self._done = 0  # units that can no longer grow
        self._open = ""  # a trailing word that the next piece may continue
        self.tail = ""  # the last few characters, for sentence-end tests

    @property
    def count(self) -> int:
        return self._done + (1 if self._open else 0)

    def add(self, piece: str) -> None:
        text = self._open + piece
        units = list(_UNIT.finditer(text))
        self._open = ""
        if units:
            last = units[-1]
            if last.end() == len(text) and not re.fullmatch(rf"[{_CJK}]", last.group()):
                self._open = last.group()
                units.pop()
        self._done += len(units)
        self.tail = (self.tail + piece)[-16:]


# Tokens per word (English) or per character (Chinese) assumed when no tokenizer is at hand:
# a little above what Llama-3 and GLM-4 tokenizers give on prose.
ASSUMED_TOKENS_PER_WORD = {"en": 1.4, "zh": 1.3}
# Tokens per word a generation's token cap allows: above every tokenizer's ratio on prose.
TOKEN_CAP_PER_WORD = 1.6


def language(text: str) -> str:
    """``zh`` when the text is mostly Chinese characters, else ``en``."""
    cjk = sum(1 for ch in text if "\u3400" <= ch <= "\u9fff")
    return "zh" if cjk * 2 > count_words(text) else "en"


def measure_tokens_per_word(path: Path, lang: str) -> float:
    """Tokens per word (per character for Chinese) of the model's own tokenizer on sample prose.

    Loads only the vocabulary, not the weights, once per file and language."""
    stat = path.stat()
    return _measured(path.resolve(), lang, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _measured(path: Path, lang: str, size: int, mtime: int) -> float:
    """The measurement, cached by the file's size and time (a changed file is measured anew)."""
    from lwlocal.runtime.engine import count_tokens
    from lwlocal.util.samples import CHINESE, ENGLISH
    sample = CHINESE if lang == "zh" else ENGLISH
    return count_tokens(path, sample) / count_words(sample)
