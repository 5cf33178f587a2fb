"""Refusing an output that would replace one of the command's own inputs.

Files are compared by device and inode (``os.stat`` follows links), so a hard link, a symbolic
link or a ``..`` path to an input is caught as surely as the input's own name. An input folder
(a checkpoint, a job) counts every file under it as an input: writing a new file into it is
fine, replacing one of its files is not.
"""

from __future__ import annotations

import os
from pathlib import Path

from lwlocal.util.errors import LwlocalError

FileId = tuple[int, int]


def _file_id(path: Path) -> FileId | None:
    """Device and inode of what ``path`` names (through links), or None if nothing."""
    try:
        stat = os.stat(path)
    except (OSError, ValueError):
        return None
    return stat.st_dev, stat.st_ino


def _files_under(folder: Path) -> set[FileId]:
    """Device and inode of every file under ``folder`` (links followed to their targets)."""
    found = set()
    for root, _, names in os.walk(folder):
        for name in names:
            if (file_id := _file_id(Path(root) / name)) is not None:
                found.add(file_id)
    return found


def refuse_input_as_output(output: Path, inputs: dict[str, Path | None]) -> None:
    """Raise a one-line error if writing ``output`` would replace an input.

    ``inputs`` maps what each input is (``"input model"``, ``"importance matrix"``) to its
    path; None entries are skipped. An output that does not exist yet replaces nothing."""
    out_id = _file_id(output)
    if out_id is None:
        return
    for role, path in inputs.items():
        if path is None or (in_id := _file_id(path)) is None:
            continue
        if out_id == in_id:
            raise LwlocalError(f"output {output} is the {role} {path}")
        if path.is_dir() and out_id in _files_under(path):
            raise LwlocalError(f"output {output} is a file of the {role} {path}")
