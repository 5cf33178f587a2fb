"""Cheap copies of the default model for tests that damage or overwrite one: its header (the
metadata, vocabulary and tensor table: the first 2 MiB) with the weights left as a sparse hole
of zeros, so a copy costs 2 MiB of writing however large the model."""

from __future__ import annotations

from pathlib import Path

HEADER_BYTES = 2 * 2**20


def header_of(model: Path) -> bytes:
    """The first ``HEADER_BYTES`` of ``model``."""
    with model.open("rb") as handle:
        return handle.read(HEADER_BYTES)


def sparse_copy(header: bytes, size: int, path: Path) -> Path:
    """Write ``header`` to ``path`` and extend it with zeros to ``size`` bytes (a hole when
    ``size`` is larger, a truncation when smaller)."""
    with path.open("wb") as handle:
        handle.write(header[:size])
        handle.truncate(size)
    return path


def with_uint32(header: bytes, key: str, value: int) -> bytes:
    """``header`` with the uint32 metadata value of ``key`` set to ``value``."""
    import struct

    data = bytearray(header)
    at = data.index(key.encode()) + len(key)
    (kind,) = struct.unpack_from("<I", data, at)
    assert kind == 4, f"{key} is not a uint32"  # GGUFValueType.UINT32
    struct.pack_into("<I", data, at + 4, value)
    return bytes(data)
