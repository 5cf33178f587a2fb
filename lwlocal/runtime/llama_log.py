"""llama.cpp's own output, kept off the terminal without touching the process's file
descriptors.

llama-cpp-python silences a quiet (``verbose=False``) model by pointing file descriptors 1 and 2
at /dev/null while it loads; a terminal app drawing on those descriptors from another thread
loses its output meanwhile, and two loads at once can leave them there for good. Here models are
made ``verbose`` (nothing is redirected), llama.cpp's log lines go to :func:`log_path` through
its log callback, the few lines llama-cpp-python prints itself while loading go there too, and
models load one at a time.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import llama_cpp

from lwlocal.util.errors import LwlocalWarning
from lwlocal.util.paths import home

LOG_LIMIT = 8 * 2**20  # bytes: a longer log is started afresh by the next process
_LOAD = threading.Lock()  # one model (or vocabulary) load at a time
_LOG_LOCK = threading.Lock()
_sink: IO[str] | None = None
_failed = False  # a log line could not be written (said once)


def log_path() -> Path:
    """The file llama.cpp's log lines are appended to (started afresh past ``LOG_LIMIT``)."""
    return home() / "llama.log"


def _open_sink() -> IO[str] | None:
    """The log file, opened once (and again when the lwlocal home changes)."""
    global _sink
    path = log_path()
    if _sink is not None and _sink.name != str(path):
        _sink.close()
        _sink = None
    if _sink is None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fresh = path.is_file() and path.stat().st_size > LOG_LIMIT
            _sink = path.open("w" if fresh else "a", encoding="utf-8", errors="replace")
        except OSError:
            return None
    return _sink


def _write(text: str) -> None:
    with _LOG_LOCK:
        if (sink := _open_sink()) is not None:
            sink.write(text)
            sink.flush()


def _log(text: str) -> None:
    """Append ``text`` to the log; where it cannot be (a full disk), the line is dropped with
    one warning for the process: an exception must not reach llama.cpp, through whose
    callback it would be printed as a ctypes traceback and lost."""
    global _failed
    try:
        _write(text)
    except Exception as exc:  # noqa: BLE001 - whatever failed, the log line is what is lost
        if not _failed:
            _failed = True
            with contextlib.suppress(Exception):  # warnings made errors: still nothing raised
                warnings.warn(f"{log_path()}: llama.cpp's log cannot be written ({exc}); its "
                              "lines are dropped", LwlocalWarning, stacklevel=2)


@llama_cpp.llama_log_callback
def _on_log(level: int, text: bytes, user_data: Any) -> None:
    _log(text.decode("utf-8", errors="replace"))


class _Prints(io.TextIOBase):
    """``sys.stderr`` while a model loads: what the loading thread prints (llama-cpp-python's
    own lines) goes to the log, what any other thread prints where it went before."""

    def __init__(self, before: IO[str] | None) -> None:
        super().__init__()
        self.before = before
        self._thread = threading.get_ident()

    def write(self, text: str) -> int:
        if threading.get_ident() == self._thread:
            _log(text)
        elif self.before is not None:
            self.before.write(text)
        return len(text)

    def flush(self) -> None:
        if self.before is not None:
            self.before.flush()


def install() -> None:
    """Send llama.cpp's (and ggml's) log lines to the log file instead of standard error."""
    llama_cpp.llama_log_set(_on_log, ctypes.c_void_p(0))


@contextlib.contextmanager
def loading() -> Iterator[None]:
    """Around a model load: one at a time, llama-cpp-python's prints sent to the log, and in the
    main thread Ctrl-C held back until the load returns (llama.cpp cannot be stopped mid-load,
    and an interrupt raised inside its log callback would be lost), then raised."""
    interrupted = threading.Event()
    main = threading.current_thread() is threading.main_thread()
    previous: Any = None
    if main:
        previous = signal.signal(signal.SIGINT, lambda *_: interrupted.set())
    try:
        with _LOAD:
            prints = _Prints(sys.stderr)
            sys.stderr = prints
            try:
                yield
            finally:
                if sys.stderr is prints:  # unless someone (an app closing) set it meanwhile
                    sys.stderr = prints.before
    finally:
        if main:
            signal.signal(signal.SIGINT, signal.default_int_handler if previous is None
                          else previous)
    if interrupted.is_set():
        raise KeyboardInterrupt


install()
