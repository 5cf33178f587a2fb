"""Reading a GGUF file's header and metadata without loading its weights."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from lwlocal.util.errors import LwlocalError

if TYPE_CHECKING:
    from gguf import GGUFReader

GGUF_MAGIC = b"GGUF"


def check_gguf(path: Path) -> None:
    """Raise a one-line error unless ``path`` is a readable GGUF file."""
    if not path.exists():
        raise LwlocalError(f"{path}: no such file")
    if not path.is_file():
        raise LwlocalError(f"{path}: not a file")
    with path.open("rb") as handle:
        if handle.read(4) != GGUF_MAGIC:
            raise LwlocalError(f"{path}: not a GGUF file (bad magic)")


def _version(path: Path) -> tuple[Path, int, int]:
    """A cache key that changes when the file is rewritten."""
    try:
        stat = path.stat()
    except OSError as exc:
        raise LwlocalError(f"{path}: cannot read it ({exc.strerror})") from exc
    return path, stat.st_mtime_ns, stat.st_size


def read_gguf(path: Path) -> GGUFReader:
    """The parsed header of a GGUF (memory-mapped, weights not read); parsed once per process
    and version of the file."""
    return _read_gguf(_version(path))


@functools.lru_cache(maxsize=8)
def _read_gguf(version: tuple[Path, int, int]) -> GGUFReader:
    from gguf import GGUFReader

    path = version[0]
    try:
        return GGUFReader(path)
    except (ValueError, OSError) as exc:
        raise LwlocalError(f"{path}: unreadable GGUF metadata ({exc})") from exc


Scalar = int | float | str | bool


def gguf_metadata(path: Path) -> dict[str, Scalar]:
    """Scalar and string metadata of a GGUF (arrays skipped), read without loading weights."""
    return dict(_scalar_fields(_version(path)))


@functools.lru_cache(maxsize=8)
def _scalar_fields(version: tuple[Path, int, int]) -> tuple[tuple[str, Scalar], ...]:
    from gguf import GGUFValueType

    return tuple(
        (name, field.contents())
        for name, field in _read_gguf(version).fields.items()
        if field.types and field.types[0] != GGUFValueType.ARRAY
    )



def file_quant(path: Path) -> str:
    """The quant a GGUF's metadata declares (``Q4_K_M``, ``F16``…), or ``?``."""
    from gguf import Keys, LlamaFileType

    try:
        value = LlamaFileType(int(gguf_metadata(path).get(Keys.General.FILE_TYPE, -1)))
    except ValueError:
        return "?"
    return value.name.removeprefix("MOSTLY_").removeprefix("ALL_")
