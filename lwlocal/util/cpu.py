"""How many threads to run native code on."""

from __future__ import annotations

import os

import psutil

from lwlocal.util.errors import SettingError


def physical_cores() -> int:
    """Physical CPU cores (llama.cpp runs best with one thread per core)."""
    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


MAX_THREADS = 512  # ggml's GGML_MAX_N_THREADS: llama.cpp aborts beyond it


def check_threads(threads: int | None) -> None:
    """Refuse a thread count native code cannot run (None: the default, one per core)."""
    if threads is not None and not (isinstance(threads, int) and 1 <= threads <= MAX_THREADS):
        raise SettingError(f"{{threads}} {threads}: must be between 1 and {MAX_THREADS}")
