"""Where a command writes its output: checked before the work (the folder exists and takes a new
file, the room it needs is free) and written under a temporary name that becomes the output only
once whole, so that a full disk or a read-only folder is one line at any point, and no partial
file is left behind."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from lwlocal.util.errors import LwlocalError

MiB = 2**20


class DestinationError(LwlocalError):
    """An output that cannot be written (no such folder, read-only, full), in one line."""


def _mib(size: int) -> str:
    return f"{size / MiB:.1f} MiB"


def check_folder(folder: Path, size: int = 0, *, output: Path | None = None) -> None:
    """Fail before any work if a new file of ``size`` bytes could not be made in ``folder``
    (made first if missing: then its nearest existing parent is what must take it). Errors
    name ``output`` (the file to be written), else the folder."""
    label = output or folder
    existing = Path(os.path.abspath(folder))
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise DestinationError(f"{label}: {existing} is not a folder")
    probe = existing / f".lwlocal-probe-{os.getpid()}"
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        probe.unlink()
    except OSError as exc:
        raise DestinationError(f"{label}: cannot write in {existing} "
                               f"({exc.strerror or exc})") from exc
    free = shutil.disk_usage(existing).free
    if free < size:
        raise DestinationError(f"{label}: {existing} has {_mib(free)} free, {_mib(size)} "
                               "needed")


def check_output_folder(folder: Path) -> None:
    """Fail before any work if the output folder ``folder`` is not a folder, or could not be
    made as the one missing folder in an existing one (a mistyped path makes no tree)."""
    if folder.exists() and not folder.is_dir():
        raise DestinationError(f"{folder}: not a folder")
    parent = Path(os.path.abspath(folder)).parent
    if not folder.exists() and not parent.is_dir():
        raise DestinationError(f"{folder}: folder {parent} does not exist (only the last "
                               "folder of an output is made)")
    check_folder(folder)


def check_destination(path: Path, size: int = 0) -> None:
    """Fail before any work if the file ``path`` could not be written: it names a folder or
    something other than a file, its folder does not exist or takes no new file, or that
    folder has less than ``size`` bytes free."""
    if path.is_dir():
        raise DestinationError(f"{path}: is a folder, not a file")
    if path.exists() and not path.is_file():
        raise DestinationError(f"{path}: not a regular file")
    folder = path.parent
    if not folder.is_dir():
        raise DestinationError(f"{path}: folder {folder} does not exist")
    if path.exists() and not os.access(path, os.W_OK):
        raise DestinationError(f"{path}: not writable")
    check_folder(folder, size, output=path)


def write_error(path: Path, exc: OSError) -> DestinationError:
    """An OSError met while writing ``path``, as one line naming it."""
    return DestinationError(f"{path}: could not be written ({exc.strerror or exc})")


@contextlib.contextmanager
def replacing(path: Path, suffix: str = ".partial") -> Iterator[Path]:
    """A temporary name beside ``path`` (``.NAME.partial``) for the block to write; it becomes
    ``path`` when the block ends, and is removed when anything fails (an OSError becomes one
    line naming ``path``)."""
    tmp = path.with_name(f".{path.name}{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        raise write_error(path, exc) from exc
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
