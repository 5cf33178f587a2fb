"""Slow fixtures made once per machine: kept under lwlocal's cache folder, keyed by everything
they are made from, made by one test process while the others wait for it (pytest-xdist runs
several), and read-only, so that a test that would change one fails instead."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from collections.abc import Callable, Iterable
from pathlib import Path

from filelock import FileLock


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lwlocal" / "test-fixtures"


def _key(inputs: Iterable[str | Path]) -> str:
    """A digest of the inputs: a file's bytes, or a string as it is."""
    digest = hashlib.sha256()
    for item in inputs:
        if isinstance(item, Path):
            with item.open("rb") as f:
                while block := f.read(1 << 20):
                    digest.update(block)
        else:
            digest.update(item.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def cached(name: str, inputs: Iterable[str | Path], make: Callable[[Path], object]) -> Path:
    """The folder ``make`` fills for ``inputs``, made on first use (in a temporary folder,
    renamed when complete; this name's folders for other inputs are removed then)."""
    root = cache_root()
    folder = root / f"{name}-{_key(inputs)}"
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(root / f"{name}.lock"):
        if not folder.is_dir():
            for old in root.glob(f"{name}-*"):
                _writable(old)
                shutil.rmtree(old)
            partial = root / f".{folder.name}.partial"
            make(partial)
            for file in partial.rglob("*"):
                if file.is_file():
                    file.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
            partial.rename(folder)
    return folder


def _writable(folder: Path) -> None:
    for file in folder.rglob("*"):
        if file.is_file():
            file.chmod(stat.S_IRUSR | stat.S_IWUSR)
