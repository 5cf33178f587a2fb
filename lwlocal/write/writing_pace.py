"""How many tokens a model generates for each word of its text, learned from its runs here.

The time plan counts a job's text at the ratio the model's tokenizer gives on sample prose
until the model has written here. A model's own prose may take fewer tokens a word (the
default model's took 1.11 and 1.14 against 1.28 on the sample: ``benchmarks/time_plan.py``),
and the guard's repairs generate some text twice. Each finished run keeps the words of the
sections it wrote and the tokens it generated for them, per model file, mode and language
(``en``, ``zh``: a word is a character in Chinese), in the lwlocal home; the plan then counts
the latest ``PACE_RUNS`` runs' tokens over their words.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lwlocal.util.destination import DestinationError
from lwlocal.util.measurements import change_entry, kept_entries
from lwlocal.util.paths import home

PACE_RUNS = 5


@dataclass(frozen=True)
class Pace:
    """Tokens generated per word written over ``runs`` runs of a model."""

    tokens_per_word: float
    runs: int


def pace_file() -> Path:
    return home() / "writing_pace.json"


def pace_key(model: Path, mode: str, lang: str) -> str:
    stat = model.stat()
    return f"{model.name} {stat.st_size} {stat.st_mtime_ns} | {mode} | {lang}"


def _runs(entry: object) -> list[tuple[int, int]]:
    """The (words, tokens) pairs of an entry; none where it is not such a list."""
    runs = entry.get("runs") if isinstance(entry, dict) else None
    if not isinstance(runs, list):
        return []
    return [(words, tokens) for words, tokens in (run for run in runs if isinstance(run, list)
                                                  and len(run) == 2)
            if isinstance(words, int) and isinstance(tokens, int) and words > 0 and tokens > 0]


def kept_pace(model: Path, mode: str, lang: str) -> Pace | None:
    """The pace learned for ``model`` in ``mode`` and ``lang`` here, or None before its first
    run."""
    runs = _runs(kept_entries(pace_file()).get(pace_key(model, mode, lang)))
    if not runs:
        return None
    return Pace(sum(t for _, t in runs) / sum(w for w, _ in runs), len(runs))


def keep_pace(model: Path, mode: str, lang: str, sections: Sequence[tuple[int, int]]) -> None:
    """Keep a run's ``sections`` written (words, tokens generated) for ``model``; where the
    model file is gone or the home cannot be written (a full disk), the finished run goes
    without it."""
    words, tokens = sum(w for w, _ in sections), sum(t for _, t in sections)
    if words <= 0 or tokens <= 0:
        return
    with contextlib.suppress(OSError, DestinationError):
        change_entry(pace_file(), pace_key(model, mode, lang), lambda entry: {
            "runs": [list(run) for run in [*_runs(entry), (words, tokens)][-PACE_RUNS:]]})
