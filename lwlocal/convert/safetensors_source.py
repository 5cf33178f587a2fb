"""A Hugging Face checkpoint's tensors, read one at a time from safetensors files.

No torch: the header is JSON, the data a flat byte range; bf16 is widened to f32 with numpy.
Every header is checked against its file (offsets in range, sizes matching shapes and dtypes)
before anything is converted, so a truncated or corrupt shard fails up front with its name.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lwlocal.util.errors import LwlocalError

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
MAX_HEADER = 100 * 2**20
DTYPES: dict[str, np.dtype] = {
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),  # widened to f32 on load
    "F64": np.dtype("<f8"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lies: its file, dtype, shape and byte range within the data section."""

    name: str
    file: Path
    dtype: str
    shape: tuple[int, ...]
    start: int  # absolute offset in the file
    nbytes: int


def read_header(path: Path) -> list[TensorInfo]:
    """The tensors of one safetensors file, validated against the file's size."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        raw = handle.read(8)
        if len(raw) < 8:
            raise LwlocalError(f"{path}: truncated safetensors file (no header)")
        (header_len,) = struct.unpack("<Q", raw)
        if header_len > min(MAX_HEADER, size - 8):
            raise LwlocalError(f"{path}: safetensors header of {header_len} bytes is larger than "
                               f"the file ({size} bytes)")
        try:
            header = json.loads(handle.read(header_len))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise LwlocalError(f"{path}: corrupt safetensors header ({exc})") from exc
    if not isinstance(header, dict):
        raise LwlocalError(f"{path}: corrupt safetensors header (not an object)")
    data_start = 8 + header_len
    infos = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape = entry["dtype"], tuple(entry["shape"])
            begin, end = entry["data_offsets"]
        except (KeyError, TypeError, ValueError) as exc:
            raise LwlocalError(f"{path}: tensor {name}: malformed header entry") from exc
        if dtype not in DTYPES:
            raise LwlocalError(f"{path}: tensor {name}: unsupported dtype {dtype}")
        expected = math.prod(shape) * DTYPES[dtype].itemsize
        if not 0 <= begin <= end or end - begin != expected:
            raise LwlocalError(f"{path}: tensor {name}: {end - begin} bytes for shape "
                               f"{list(shape)} of {dtype} (expected {expected})")
        if data_start + end > size:
            raise LwlocalError(f"{path}: tensor {name}: data offsets beyond the end of the file "
                               "(truncated?)")
        infos.append(TensorInfo(name, path, dtype, shape, data_start + begin, end - begin))
    return infos


class Checkpoint:
    """A local Hugging Face model folder: config, tokenizer files, safetensors weights."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        config = folder / "config.json"
        if not config.is_file():
            raise LwlocalError(f"{folder}: no config.json (not a Hugging Face model folder)")
        try:
            self.config: dict = json.loads(config.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise LwlocalError(f"{config}: not valid JSON ({exc})") from exc
        self.tensors: dict[str, TensorInfo] = {}
        for shard in self._shards():
            for info in read_header(shard):
                self.tensors[info.name] = info

    def _shards(self) -> list[Path]:
        index = self.folder / INDEX
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise LwlocalError(f"{index}: malformed index ({exc})") from exc
            shards = sorted({self.folder / name for name in weight_map.values()})
        elif (self.folder / SINGLE).is_file():
            shards = [self.folder / SINGLE]
        else:
            shards = sorted(self.folder.glob("*.safetensors"))
        if not shards:
            pickles = list(self.folder.glob("*.bin")) + list(self.folder.glob("*.pt"))
            why = ("only PyTorch pickles (*.bin), which lwlocal never unpickles: convert them "
                   "to safetensors first") if pickles else "no *.safetensors weights"
            raise LwlocalError(f"{self.folder}: {why}")
        for shard in shards:
            if not shard.is_file():
                raise LwlocalError(f"{shard}: shard named in {INDEX} is missing")
        return shards

    def __iter__(self) -> Iterator[TensorInfo]:
        return iter(self.tensors.values())

    def load(self, info: TensorInfo) -> np.ndarray:
        """The tensor as a numpy array (f32 for bf16 sources)."""
        return self.load_rows(info, 0, info.shape[0] if info.shape else 1)

    def load_rows(self, info: TensorInfo, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` (first dimension) of the tensor, f32 for bf16 sources.

        Read into a fresh buffer rather than a memory map: mapped pages would stay resident
        until the end, and peak memory would grow to the size of the checkpoint."""
        dtype = DTYPES[info.dtype]
        if not info.shape:
            return np.fromfile(info.file, dtype=dtype, count=1, offset=info.start).reshape(())
        stop = min(stop, info.shape[0])
        row = math.prod(info.shape[1:])
        array = np.fromfile(info.file, dtype=dtype, count=(stop - start) * row,
                            offset=info.start + start * row * dtype.itemsize)
        array = array.reshape((stop - start, *info.shape[1:]))
        if info.dtype == "BF16":
            return (array.astype(np.uint32) << 16).view(np.float32)
        return array

    @property
    def source_dtype(self) -> str:
        """The dtype most of the weights are stored in (by bytes)."""
        totals: dict[str, int] = {}
        for info in self.tensors.values():
            totals[info.dtype] = totals.get(info.dtype, 0) + info.nbytes
        return max(totals, key=lambda d: totals[d])
