"""A model folder (a Hugging Face checkpoint) reads only its own files: a file that is a link
must resolve inside the folder, or, for a snapshot in the Hugging Face cache (whose files are
links to ``../../blobs/``), inside that repository's blobs."""

from __future__ import annotations

import os
from pathlib import Path

from lwlocal.util.errors import LwlocalError


def own_roots(folder: Path) -> list[Path]:
    """Where the files of ``folder`` may lie once links are followed: the folder, and for a
    hub-cache snapshot (``models--ORG--NAME/snapshots/REVISION``) the repository's blobs."""
    real = folder.resolve()
    roots = [real]
    if real.parent.name == "snapshots":
        roots.append(real.parent.parent / "blobs")
    return roots


def check_contained(folder: Path) -> None:
    """Refuse, in one line and before any file is opened, a model folder holding a link (to a
    file or a folder, at any depth) that resolves outside :func:`own_roots`."""
    roots = own_roots(folder)
    for where, folders, files in os.walk(folder):
        for name in (*folders, *files):
            entry = Path(where) / name
            if not entry.is_symlink():
                continue
            target = entry.resolve()
            if not any(target.is_relative_to(root) for root in roots):
                raise LwlocalError(f"{entry}: a link to {target}, outside the model folder "
                                   "(only the folder's own files are read)")
