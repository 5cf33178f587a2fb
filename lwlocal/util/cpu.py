"""How many threads to run native code on, and at what priority."""

from __future__ import annotations

import contextlib
import os
import sys
import threading

import psutil

from lwlocal.util.errors import SettingError

BACKGROUND_NICE = 10  # niceness of work that must not slow an interface down


def physical_cores() -> int:
    """Physical CPU cores (llama.cpp runs best with one thread per core)."""
    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


MAX_THREADS = 512  # ggml's GGML_MAX_N_THREADS: llama.cpp aborts beyond it
THREADS_ENV = "LWLOCAL_THREADS"  # threads for native code where none are given, as OMP_NUM_THREADS


def threads_from_env() -> int | None:
    """``$LWLOCAL_THREADS``, checked (None where it is not set)."""
    value = os.environ.get(THREADS_ENV, "").strip()
    if not value:
        return None
    if not value.isdigit() or not 1 <= int(value) <= MAX_THREADS:
        raise SettingError(f"{THREADS_ENV}={value}: must be a whole number between 1 and "
                           f"{MAX_THREADS}")
    return int(value)


def default_threads(cores: int | None = None) -> int:
    """Threads native code runs on where none are given: ``$LWLOCAL_THREADS``, else one per
    physical core (``cores``, or this machine's)."""
    return threads_from_env() or cores or physical_cores()


def check_threads(threads: int | None) -> None:
    """Refuse a thread count native code cannot run (None: the default, one per core)."""
    if threads is not None and not (isinstance(threads, int) and 1 <= threads <= MAX_THREADS):
        raise SettingError(f"{{threads}} {threads}: must be between 1 and {MAX_THREADS}")


def run_in_background() -> None:
    """Lower the calling thread's CPU priority, and that of the threads it starts (llama.cpp's
    compute threads), so that an interface drawing on the same cores stays quick. Linux only,
    where niceness is per thread; elsewhere nothing changes."""
    if not sys.platform.startswith("linux"):
        return
    thread = threading.get_native_id()
    with contextlib.suppress(OSError):
        if os.getpriority(os.PRIO_PROCESS, thread) < BACKGROUND_NICE:
            os.setpriority(os.PRIO_PROCESS, thread, BACKGROUND_NICE)
