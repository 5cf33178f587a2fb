"""A folder whose disk fills at a given size: a tmpfs mounted there, or, where tmpfs cannot be
mounted, a plain folder and a ``preexec_fn`` that limits a child's file size instead."""

from __future__ import annotations

import contextlib
import resource
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path


@contextlib.contextmanager
def small_disk(folder: Path, limit: int) -> Iterator[Callable[[], None] | None]:
    """``folder`` (made) on a tmpfs of ``limit`` bytes, yielding None; else yields a
    ``preexec_fn`` for a child that limits its files to ``limit`` bytes (RLIMIT_FSIZE, with
    SIGXFSZ ignored so that the write fails with EFBIG rather than killing the child)."""
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={limit}", "tmpfs",
                              str(folder)], capture_output=True).returncode == 0
    if not mounted:
        def limited() -> None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        yield limited
        return
    try:
        yield None
    finally:
        subprocess.run(["umount", str(folder)], check=True)
