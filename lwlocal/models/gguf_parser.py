"""Parsing a GGUF header from the file's bytes, every field checked before it is used: counts
plausible for the file's size, strings and arrays inside the file, known value and tensor types,
tensor data aligned, inside the file and not overlapping."""

from __future__ import annotations

import mmap
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lwlocal.models.gguf_header import GGUFArray, GGUFFile, InvalidGGUF, Scalar, TensorInfo

if TYPE_CHECKING:
    from gguf import GGUFValueType

GGUF_MAGIC = b"GGUF"
VERSIONS = (2, 3)  # 1 had 32-bit counts; llama.cpp reads 2 and 3
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_NAME = 63  # GGML_MAX_NAME less its terminating NUL
# The least bytes one metadata entry (key length, type, a one-byte value) and one tensor entry
# (name length, dimension count, one dimension, type, offset) take: bounds for the counts.
MIN_ENTRY_BYTES = 8 + 4 + 1
MIN_TENSOR_BYTES = 8 + 4 + 8 + 4 + 8


class HeaderParser:
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
