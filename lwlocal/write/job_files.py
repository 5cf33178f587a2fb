"""Finding a job's folder and reading its files: a job reads only its own files, regular files
(not links) in its own folders, in UTF-8, and its folder must lie in the jobs folder."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from lwlocal.util.errors import LwlocalError

NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)


def find_job(ref: str, root: Path) -> Path:
    """The folder ``ref`` names: a path (with a separator) as it is, else the job of that id,
    or the one job whose id begins with it, in ``root``."""
    if os.sep in ref or (os.altsep and os.altsep in ref) or ref in (".", "..", "~"):
        return Path(ref).expanduser()
    names = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
    matches = [ref] if ref in names else [n for n in names if ref and n.startswith(ref)]
    if len(matches) != 1:
        why = "no such job" if not matches else "several jobs match"
        raise LwlocalError(f"{ref}: {why} in {root}")
    return root / matches[0]


def check_in_root(folder: Path, root: Path) -> None:
    """Refuse a job folder that is not a folder of ``root`` once links are followed."""
    real = folder.resolve()
    if real.parent != root.resolve():
        raise LwlocalError(f"{folder}: not a job of {root} (jobs are read from there only)")
    if not real.is_dir():
        raise LwlocalError(f"{folder}: not a job (not a folder)")


def check_own_folder(path: Path, job: Path) -> None:
    """Refuse a job file whose folder (the job's, or its sections/) is a link."""
    if path.parent != job and path.parent.is_symlink():
        raise LwlocalError(f"{path.parent}: a link; a job's files lie in its own folder")


def read_own(path: Path, job: Path) -> str | None:
    """The text of the job file ``path`` (None if there is none), refused in one line unless it
    is a regular file in the job's own folders (not a link) holding UTF-8 text."""
    check_own_folder(path, job)
    try:
        mode = path.lstat().st_mode
        if not stat.S_ISREG(mode):
            what = "a link" if stat.S_ISLNK(mode) else "not a regular file"
            raise LwlocalError(f"{path}: {what}; a job reads only its own files")
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LwlocalError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LwlocalError(f"{path}: not UTF-8 text (byte {exc.start})") from None
