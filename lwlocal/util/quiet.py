"""Silencing what native libraries print straight to the process's file descriptors."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def quiet_stderr(fd: int = 2, into: Path | None = None) -> Iterator[None]:
    """Silence what native code prints to file descriptor 2 (llama.cpp bypasses Python's
    sys.stderr), or to ``fd`` (1: libraries that print banners to standard output); with
    ``into``, keep it at the end of that file instead."""
    sys.stderr.flush()
    sys.stdout.flush()
    saved = os.dup(fd)
    try:
        with open(into or os.devnull, "a", encoding="utf-8") as sink:
            os.dup2(sink.fileno(), fd)
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved, fd)
        os.close(saved)
