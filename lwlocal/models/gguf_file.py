"""Reading a GGUF file's header (metadata and tensor table) without loading its weights: parsed
once per process and version of the file (``gguf_parser.py``), checked as it is read. A damaged
file gives one line, ``FILE: not a valid GGUF (why)``, never a traceback; ``gguf_checks.py``
checks the vocabulary and the model's metadata.
"""

from __future__ import annotations

import functools
import mmap
from pathlib import Path

from lwlocal.models.gguf_header import GGUFArray, GGUFFile, InvalidGGUF, Scalar
from lwlocal.models.gguf_parser import GGUF_MAGIC, HeaderParser
from lwlocal.util.errors import LwlocalError


def check_gguf(path: Path) -> None:
    """Raise a one-line error unless ``path`` is a GGUF file whose header is sound."""
    if not path.exists():
        raise LwlocalError(f"{path}: no such file")
    if not path.is_file():
        raise LwlocalError(f"{path}: not a file")
    read_gguf(path)


def file_version(path: Path) -> tuple[Path, int, int, int, int]:
    """A cache key that changes when the file is rewritten."""
    try:
        stat = path.stat()
    except OSError as exc:
        raise LwlocalError(f"{path}: cannot read it ({exc.strerror})") from exc
    return path, stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size


def read_gguf(path: Path) -> GGUFFile:
    """The checked header of a GGUF (weights not read); parsed once per process and version of
    the file."""
    return read_gguf_version(file_version(path))


@functools.lru_cache(maxsize=8)
def read_gguf_version(version: tuple[Path, int, int, int, int]) -> GGUFFile:
    path = version[0]
    try:
        with path.open("rb") as handle:
            if handle.read(4) != GGUF_MAGIC:
                raise LwlocalError(f"{path}: not a GGUF file (bad magic)")
            handle.seek(0)
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return HeaderParser(path, data).parse()
    except InvalidGGUF as exc:
        raise LwlocalError(f"{path}: not a valid GGUF ({exc})") from exc
    except OSError as exc:
        raise LwlocalError(f"{path}: cannot read it ({exc.strerror or exc})") from exc


def gguf_metadata(path: Path) -> dict[str, Scalar]:
    """Scalar and string metadata of a GGUF (arrays skipped), read without loading weights."""
    return {key: value for key, value in read_gguf(path).fields.items()
            if not isinstance(value, GGUFArray)}


def file_quant(path: Path) -> str:
    """The quant a GGUF's metadata declares (``Q4_K_M``, ``F16``…), ``?`` if none, or
    ``invalid`` for a file that is not a sound GGUF."""
    from gguf import Keys, LlamaFileType

    try:
        value = LlamaFileType(int(gguf_metadata(path).get(Keys.General.FILE_TYPE, -1)))
    except ValueError:
        return "?"
    except LwlocalError:
        return "invalid"
    return value.name.removeprefix("MOSTLY_").removeprefix("ALL_")
