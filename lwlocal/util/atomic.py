"""Writing a file so that a crash leaves the old one or the new one, never half of either."""

from __future__ import annotations

import os
from pathlib import Path

from lwlocal.util.destination import replacing, write_error


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file, fsync and rename; an OSError (a
    full disk) is one line naming ``path``, and leaves the old file as it was."""
    with replacing(path, f".{os.getpid()}.tmp") as tmp, tmp.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise write_error(path, exc) from exc
