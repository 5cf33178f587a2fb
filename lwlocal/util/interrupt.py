"""Ctrl-C and SIGTERM that stop the work wherever they arrive.

Python raises KeyboardInterrupt in whatever Python code the main thread runs when the signal is
handled. Inside a ctypes callback (llama.cpp calls back into Python to log while it loads a
model, and for every tensor while ``imatrix`` evaluates) that exception is printed as
"Exception ignored" and lost, and the work goes on: ``held`` keeps such signals over a call into
C and raises them when it returns.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

STOPPING = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """SIGTERM, raised as Ctrl-C raises KeyboardInterrupt so that the same clean-up runs."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(signum)


def handle_sigterm() -> None:
    """From now on SIGTERM stops the process as Ctrl-C does (jobs are left resumable, files
    being written are removed) instead of killing it on the spot."""
    signal.signal(signal.SIGTERM, _raise)


def exit_status(exc: BaseException) -> int:
    """The exit status of a process stopped by ``exc`` (or what it was raised from): 128 plus
    the signal, 130 for Ctrl-C and 143 for SIGTERM."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, Interrupted):
            return 128 + seen.signum
        seen = seen.__cause__ or seen.__context__
    return 128 + signal.SIGINT


@contextlib.contextmanager
def held() -> Iterator[Callable[[], bool]]:
    """Keep Ctrl-C and SIGTERM from being raised inside the block (a call into C that calls
    back into Python); the function given tells whether one came, so that a callback can make
    the C code stop early. When the block ends, the first that came is delivered as usual.
    Outside the main thread (which alone handles signals) nothing is held."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    came: list[int] = []

    def keep(signum: int, _frame: FrameType | None) -> None:
        came.append(signum)

    previous = {s: signal.getsignal(s) for s in STOPPING}
    for s, handler in previous.items():
        if handler not in (signal.SIG_IGN, None):
            signal.signal(s, keep)
    try:
        yield lambda: bool(came)
    finally:
        for s, handler in previous.items():
            if handler not in (signal.SIG_IGN, None):
                signal.signal(s, handler)
        if came:
            signal.raise_signal(came[0])  # to the handler it would have met
