"""Reading a GGUF file's header (metadata and tensor table) without loading its weights.

The header is parsed here, every field checked before it is used: counts plausible for the
file's size, strings and arrays inside the file, known value and tensor types, tensor data
aligned, inside the file and not overlapping. A damaged file gives one line,
``FILE: not a valid GGUF (why)``, never a traceback. ``check_vocabulary`` checks what
llama.cpp's vocabulary loader asserts on (a C abort cannot be caught), so it runs before
every llama.cpp load; ``check_model`` adds the metadata lwlocal's planner reads.
"""

from __future__ import annotations

import functools
import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lwlocal.util.errors import LwlocalError

if TYPE_CHECKING:
    import numpy as np
    from gguf import GGMLQuantizationType, GGUFValueType

GGUF_MAGIC = b"GGUF"
VERSIONS = (2, 3)  # 1 had 32-bit counts; llama.cpp reads 2 and 3
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_NAME = 63  # GGML_MAX_NAME less its terminating NUL
MAX_LAYERS = 512  # LLAMA_MAX_LAYERS
# trained context, tokens: llama.cpp reads it as a signed 32-bit number, and llama-cpp-python
# sizes a buffer of that many tokens for every tokenization (64 MiB here; the longest models
# trained so far take 10M)
MAX_CONTEXT = 2**24
# The least bytes one metadata entry (key length, type, a one-byte value) and one tensor entry
# (name length, dimension count, one dimension, type, offset) take: bounds for the counts.
MIN_ENTRY_BYTES = 8 + 4 + 1
MIN_TENSOR_BYTES = 8 + 4 + 8 + 4 + 8

Scalar = int | float | str | bool


class InvalidGGUF(ValueError):
    """What is wrong with a GGUF file, in a few words."""


@dataclass(frozen=True)
class GGUFArray:
    """A metadata array: its element type and values (a numpy array of numbers, or the raw
    bytes of each string)."""

    item_type: GGUFValueType
    values: np.ndarray | list[bytes]

    def __len__(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class TensorInfo:
    """One entry of the tensor table. ``shape`` is in GGUF order (the row length first)."""

    name: str
    shape: tuple[int, ...]
    tensor_type: GGMLQuantizationType
    offset: int  # from the start of the file
    n_bytes: int

    @property
    def n_elements(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count


@dataclass(frozen=True)
class GGUFFile:
    """A checked GGUF header: metadata (scalars as Python values, arrays as ``GGUFArray``), the
    tensor table and where the tensor data starts."""

    path: Path
    version: int
    fields: dict[str, Scalar | GGUFArray]
    tensors: list[TensorInfo]
    data_offset: int

    def tensor_data(self, tensor: TensorInfo) -> np.ndarray:
        """A float or integer tensor's values (copied from the file), shaped row-major."""
        import numpy as np

        dtype = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "I8": "i1", "I16": "<i2",
                 "I32": "<i4", "I64": "<i8"}.get(tensor.tensor_type.name)
        if dtype is None:
            raise LwlocalError(f"{self.path}: tensor {tensor.name} is {tensor.tensor_type.name}, "
                               "not a plain number type")
        values = np.fromfile(self.path, dtype=dtype, count=tensor.n_elements,
                             offset=tensor.offset)
        return values.reshape(tuple(reversed(tensor.shape)))


def check_gguf(path: Path) -> None:
    """Raise a one-line error unless ``path`` is a GGUF file whose header is sound."""
    if not path.exists():
        raise LwlocalError(f"{path}: no such file")
    if not path.is_file():
        raise LwlocalError(f"{path}: not a file")
    read_gguf(path)


def _version(path: Path) -> tuple[Path, int, int, int, int]:
    """A cache key that changes when the file is rewritten."""
    try:
        stat = path.stat()
    except OSError as exc:
        raise LwlocalError(f"{path}: cannot read it ({exc.strerror})") from exc
    return path, stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size


def read_gguf(path: Path) -> GGUFFile:
    """The checked header of a GGUF (weights not read); parsed once per process and version of
    the file."""
    return _read_gguf(_version(path))


@functools.lru_cache(maxsize=8)
def _read_gguf(version: tuple[Path, int, int, int, int]) -> GGUFFile:
    path = version[0]
    try:
        with path.open("rb") as handle:
            if handle.read(4) != GGUF_MAGIC:
                raise LwlocalError(f"{path}: not a GGUF file (bad magic)")
            handle.seek(0)
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return _Parser(path, data).parse()
    except InvalidGGUF as exc:
        raise LwlocalError(f"{path}: not a valid GGUF ({exc})") from exc
    except OSError as exc:
        raise LwlocalError(f"{path}: cannot read it ({exc.strerror or exc})") from exc


class _Parser:
    """Reads a GGUF header from a buffer, refusing anything that does not fit the file."""

    def __init__(self, path: Path, data: mmap.mmap) -> None:
        self.path = path
        self.data = data
        self.size = len(data)
        self.pos = 0

    def take(self, n: int, what: str) -> int:
        """The position of the next ``n`` bytes, which must lie inside the file."""
        start = self.pos
        if n < 0 or start + n > self.size:
            raise InvalidGGUF(f"{what} runs past the end of the {self.size}-byte file")
        self.pos = start + n
        return start

    def unpack(self, fmt: str, what: str) -> Any:
        return struct.unpack_from(fmt, self.data, self.take(struct.calcsize(fmt), what))[0]

    def raw_string(self, what: str) -> bytes:
        length = self.unpack("<Q", what)
        start = self.take(length, what)
        return self.data[start: self.pos]

    def strings(self, count: int, what: str) -> list[bytes]:
        """``count`` strings in a row (the loop of ``raw_string``, inlined: vocabularies hold
        100,000s)."""
        data, pos, size, length = self.data, self.pos, self.size, _U64.unpack_from
        out = []
        for _ in range(count):
            end = pos + 8 + (length(data, pos)[0] if pos + 8 <= size else size)
            if end > size:
                raise InvalidGGUF(f"{what} runs past the end of the {size}-byte file")
            out.append(data[pos + 8: end])
            pos = end
        self.pos = pos
        return out

    def string(self, what: str) -> str:
        return self.raw_string(what).decode("utf-8", errors="backslashreplace")

    def parse(self) -> GGUFFile:
        from gguf import GGUFValueType, Keys

        self.pos = 4
        version = self.unpack("<I", "the header")
        if version not in VERSIONS:
            raise InvalidGGUF(f"version {version}; lwlocal reads versions 2 and 3")
        n_tensors = self.unpack("<Q", "the header")
        n_fields = self.unpack("<Q", "the header")
        room = self.size - self.pos
        if n_fields > room // MIN_ENTRY_BYTES or n_tensors > room // MIN_TENSOR_BYTES:
            raise InvalidGGUF(f"the header counts {n_fields} metadata entries and {n_tensors} "
                              f"tensors, more than {self.size} bytes can hold")
        fields: dict[str, Scalar | GGUFArray] = {}
        for index in range(n_fields):
            key = self.string(f"metadata entry {index}")
            if key in fields:
                raise InvalidGGUF(f"metadata key {key!r} appears twice")
            what = f"metadata {key!r}"
            fields[key] = self.value(GGUFValueType(self.value_type(what)), what)
        alignment = fields.get(Keys.General.ALIGNMENT, 32)
        if type(alignment) is not int or alignment <= 0 or alignment & (alignment - 1):
            raise InvalidGGUF(f"{Keys.General.ALIGNMENT} {alignment!r} is not a power of two")
        entries = [self.tensor_entry(index) for index in range(n_tensors)]
        data_offset = -(-self.pos // alignment) * alignment
        tensors = [self.place(entry, data_offset, alignment) for entry in entries]
        self.check_overlap(tensors)
        return GGUFFile(self.path, version, fields, tensors, data_offset)

    def value_type(self, what: str) -> int:
        from gguf import GGUFValueType

        code = self.unpack("<I", what)
        if code not in GGUFValueType._value2member_map_:
            raise InvalidGGUF(f"{what} has unknown type {code}")
        return int(code)

    def value(self, kind: GGUFValueType, what: str) -> Scalar | GGUFArray:
        from gguf import GGUFValueType

        if kind == GGUFValueType.STRING:
            return self.string(what)
        if kind != GGUFValueType.ARRAY:
            value = self.unpack(_FORMATS[kind.name], what)
            return bool(value) if kind == GGUFValueType.BOOL else value
        item = GGUFValueType(self.value_type(what))
        count = self.unpack("<Q", what)
        if item == GGUFValueType.ARRAY:
            raise InvalidGGUF(f"{what} is an array of arrays")
        if item == GGUFValueType.STRING:
            if count > (self.size - self.pos) // 8:
                raise InvalidGGUF(f"{what} counts {count} strings, more than the file holds")
            return GGUFArray(item, self.strings(count, what))
        import numpy as np

        dtype = np.dtype(_FORMATS[item.name])
        start = self.take(count * dtype.itemsize, what)
        return GGUFArray(item, np.frombuffer(self.data, dtype, count, start).copy())

    def tensor_entry(self, index: int) -> tuple[str, tuple[int, ...], int, int]:
        name = self.string(f"tensor entry {index}")
        what = f"tensor {name!r}"
        if len(name.encode()) > MAX_NAME:
            raise InvalidGGUF(f"{what}: the name is longer than {MAX_NAME} bytes")
        n_dims = self.unpack("<I", what)
        if not 1 <= n_dims <= MAX_DIMS:
            raise InvalidGGUF(f"{what} has {n_dims} dimensions")
        shape = tuple(self.unpack("<Q", what) for _ in range(n_dims))
        return name, shape, self.unpack("<I", what), self.unpack("<Q", what)

    def place(self, entry: tuple[str, tuple[int, ...], int, int], data_offset: int,
              alignment: int) -> TensorInfo:
        from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

        name, shape, code, offset = entry
        what = f"tensor {name!r}"
        if code not in GGMLQuantizationType._value2member_map_:
            raise InvalidGGUF(f"{what} has unknown type {code}")
        kind = GGMLQuantizationType(code)
        block, block_bytes = GGML_QUANT_SIZES[kind]
        if min(shape) <= 0 or shape[0] % block:
            raise InvalidGGUF(f"{what} has shape {list(shape)}, not whole {kind.name} blocks of "
                              f"{block}")
        elements = 1
        for dim in shape:
            elements *= dim
        n_bytes = elements // block * block_bytes
        if offset % alignment:
            raise InvalidGGUF(f"{what}: offset {offset} is not a multiple of {alignment}")
        start = data_offset + offset
        if start + n_bytes > self.size:
            raise InvalidGGUF(f"{what}: its {n_bytes} bytes at {start} lie past the end of the "
                              f"{self.size}-byte file")
        return TensorInfo(name, shape, kind, start, n_bytes)

    @staticmethod
    def check_overlap(tensors: list[TensorInfo]) -> None:
        names: set[str] = set()
        for tensor in tensors:
            if tensor.name in names:
                raise InvalidGGUF(f"tensor {tensor.name!r} appears twice")
            names.add(tensor.name)
        ordered = sorted(tensors, key=lambda t: t.offset)
        for first, second in zip(ordered, ordered[1:], strict=False):
            if first.offset + first.n_bytes > second.offset:
                raise InvalidGGUF(f"tensors {first.name!r} and {second.name!r} overlap")


_U64 = struct.Struct("<Q")
# struct formats (little-endian) of the scalar value types, by GGUFValueType name
_FORMATS = {"UINT8": "<B", "INT8": "<b", "UINT16": "<H", "INT16": "<h", "UINT32": "<I",
            "INT32": "<i", "FLOAT32": "<f", "BOOL": "<B", "UINT64": "<Q", "INT64": "<q",
            "FLOAT64": "<d"}


def gguf_metadata(path: Path) -> dict[str, Scalar]:
    """Scalar and string metadata of a GGUF (arrays skipped), read without loading weights."""
    return {key: value for key, value in read_gguf(path).fields.items()
            if not isinstance(value, GGUFArray)}


def check_vocabulary(path: Path) -> None:
    """Refuse, in one line, a vocabulary llama.cpp's loader would abort on or read past: run
    before llama.cpp loads the file. Checked once per process and version of the file."""
    _check_vocabulary(_version(path))


@functools.lru_cache(maxsize=8)
def _check_vocabulary(version: tuple[Path, int, int, int, int]) -> None:
    path = version[0]
    try:
        _vocabulary_problems(_read_gguf(version).fields)
    except InvalidGGUF as exc:
        raise LwlocalError(f"{path}: not a valid GGUF ({exc})") from exc


def _vocabulary_problems(fields: dict[str, Scalar | GGUFArray]) -> None:
    from gguf import GGUFValueType, Keys

    model = fields.get(Keys.Tokenizer.MODEL)
    if not isinstance(model, str):
        raise InvalidGGUF(f"{Keys.Tokenizer.MODEL} is missing or not a string")
    if model in ("no_vocab", "none"):
        return
    tokens = _array(fields, Keys.Tokenizer.LIST, (GGUFValueType.STRING,), required=True)
    assert tokens is not None and isinstance(tokens.values, list)
    if not tokens.values:
        raise InvalidGGUF(f"{Keys.Tokenizer.LIST} is empty")
    seen: dict[bytes, int] = {}
    for index, raw in enumerate(tokens.values):
        # as llama.cpp reads it: a C string (up to a NUL), an empty one named by its index
        text = raw.partition(b"\0")[0] or f"[EMPTY_{index}]".encode()
        if (first := seen.setdefault(text, index)) != index:
            shown = text.decode("utf-8", errors="backslashreplace")
            raise InvalidGGUF(f"tokens {first} and {index} are both {shown!r}")
    for key, kinds in ((Keys.Tokenizer.SCORES, (GGUFValueType.FLOAT32, GGUFValueType.INT32)),
                       (Keys.Tokenizer.TOKEN_TYPE, (GGUFValueType.INT32,))):
        array = _array(fields, key, kinds)
        if array is not None and len(array) < len(tokens):
            raise InvalidGGUF(f"{key} has {len(array)} entries for {len(tokens)} tokens")
    _array(fields, Keys.Tokenizer.MERGES, (GGUFValueType.STRING,), required=model == "gpt2")


def _array(fields: dict[str, Scalar | GGUFArray], key: str, kinds: tuple[GGUFValueType, ...],
           required: bool = False) -> GGUFArray | None:
    """The array ``key``, refused unless its elements are one of ``kinds``."""
    value = fields.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, GGUFArray) or value.item_type not in kinds:
        names = " or ".join(kind.name.lower() for kind in kinds)
        raise InvalidGGUF(f"{key} is {'missing' if value is None else 'not'} an array of "
                          f"{names}")
    return value


def check_model(path: Path) -> None:
    """Refuse, in one line, a GGUF that is not a model lwlocal can plan and llama.cpp can
    load: a sound header and vocabulary, the architecture's sizes as positive integers, and
    each block's tensors within its block count."""
    check_gguf(path)
    check_vocabulary(path)
    _check_model(_version(path))


@functools.lru_cache(maxsize=8)
def _check_model(version: tuple[Path, int, int, int, int]) -> None:
    from gguf import Keys

    path, header = version[0], _read_gguf(version)
    fields = header.fields
    try:
        arch = fields.get(Keys.General.ARCHITECTURE)
        if not isinstance(arch, str) or not arch:
            raise InvalidGGUF(f"{Keys.General.ARCHITECTURE} is missing or not a string")
        sizes = {key.format(arch=arch): limit for key, limit in (
            (Keys.LLM.CONTEXT_LENGTH, MAX_CONTEXT), (Keys.LLM.BLOCK_COUNT, MAX_LAYERS),
            (Keys.LLM.EMBEDDING_LENGTH, None), (Keys.LLM.FEED_FORWARD_LENGTH, None),
            (Keys.Attention.HEAD_COUNT, None))}
        for key, limit in sizes.items():
            value = fields.get(key)
            if type(value) is not int or value <= 0 or (limit and value > limit):
                raise InvalidGGUF(f"{key} is {value!r}, not a positive whole number"
                                  + (f" up to {limit}" if limit else ""))
        blocks = int(fields[Keys.LLM.BLOCK_COUNT.format(arch=arch)])  # type: ignore[arg-type]
        for tensor in header.tensors:
            part = tensor.name.split(".")
            if part[0] == "blk" and not (len(part) > 2 and part[1].isascii()
                                         and part[1].isdigit()
                                         and int(part[1]) < blocks):
                raise InvalidGGUF(f"tensor {tensor.name!r} is outside the {blocks} blocks")
        if not any(t.name.startswith("token_embd.") for t in header.tensors):
            raise InvalidGGUF("it has no token_embd tensor")
    except InvalidGGUF as exc:
        raise LwlocalError(f"{path}: not a valid GGUF ({exc})") from exc


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
