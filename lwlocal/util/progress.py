"""The one progress callback type: long work reports events, the CLI and the TUI render them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    """A snapshot of a long task.

    ``stage`` names the phase (e.g. ``plan``, ``write``); ``step``/``steps`` count its units
    (sections, tensors); ``done``/``total`` measure the current unit (words, bytes); ``text`` is
    newly produced output, if any; ``rate`` is units per second (tokens/s while writing);
    ``left`` the seconds the whole task has left, where it knows (a job with a time plan).
    Two stages are not phases: ``rewind``, the text of section ``step`` was cut back or tidied
    (what was shown of it is to be read again from the journal), and ``notice``, a line to
    show (``message``), such as a change the outline's check made.
    """

    stage: str
    step: int = 0
    steps: int = 0
    done: float = 0
    total: float = 0
    text: str = ""
    rate: float = 0.0
    message: str = ""
    left: float | None = None


ProgressCallback = Callable[[Progress], None]


def ignore(_: Progress) -> None:
    """A callback that does nothing."""
