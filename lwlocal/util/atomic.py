"""Writing a file so that a crash leaves the old one or the new one, never half of either; and
appending a line so that it is on disk whole before the next, or not at all."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from lwlocal.util.destination import replacing, write_error


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file, fsync and rename; an OSError (a
    full disk) is one line naming ``path``, and leaves the old file as it was."""
    own = f".{os.getpid()}.{threading.get_ident()}.tmp"  # each writer its own temporary file
    with replacing(path, own) as tmp, tmp.open("w", encoding="utf-8") as handle:
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


def append_line(path: Path, line: str) -> None:
    """Append ``line`` (ending in a newline) to ``path`` and fsync it; a line that cannot be
    written whole (a full disk) is taken back, and is one line naming ``path``."""
    data = line.encode()
    try:
        with path.open("ab") as handle:
            size = handle.tell()
            try:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            except OSError:
                handle.truncate(size)
                raise
    except OSError as exc:
        raise write_error(path, exc) from exc
