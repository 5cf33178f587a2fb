"""A Hugging Face checkpoint's tensors, read one at a time from safetensors files.

No torch: the header is JSON, the data a flat byte range; bf16 is widened to f32 with numpy.
Every header is checked before any array is built: each field's type and range, sizes matching
shapes and dtypes, and the tensors tiling the data section exactly (no overlap, no gap, nothing
past the end), as the safetensors library requires; an index must name exactly the shards and
tensors the folder holds. A truncated or corrupt shard fails up front with its name.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lwlocal.models.folder import check_contained
from lwlocal.util.errors import LwlocalError

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
MAX_HEADER = 100 * 2**20
MAX_DIMS = 8
MAX_BYTES = 2**62  # what numpy can address, checked before any array is shaped
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
FLOAT_DTYPES = ("F32", "F16", "BF16", "F64")


@dataclass(frozen=True)
class CheckpointTensor:
    """One tensor of a safetensors checkpoint: its file, dtype, shape and byte range within the
    data section."""

    name: str
    file: Path
    dtype: str
    shape: tuple[int, ...]
    start: int  # absolute offset in the file
    nbytes: int


def parse_json(text: bytes | str, where: Path, what: str) -> Any:
    """JSON that is ``what`` of ``where``; a duplicated key, over-deep nesting or an overlong
    number is an error like a syntax error."""
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError too
        raise LwlocalError(f"{where}: {what} is not valid JSON ({exc})") from None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise LwlocalError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys: dict[str, Any] = {}
    for key, item in pairs:
        if key in keys:
            raise ValueError(f"key {key[:80]!r} given twice")
        keys[key] = item
    return keys


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def tensor_info(path: Path, name: str, entry: Any, data_start: int, data_size: int
                ) -> CheckpointTensor:
    """One header entry, checked field by field against its file."""
    where = f"{path}: tensor {name}"
    if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
        raise LwlocalError(f"{where}: header entry is not an object with dtype, shape and "
                           "data_offsets")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise LwlocalError(f"{where}: unsupported dtype {str(dtype)[:20]}")
    if (not isinstance(shape, list) or len(shape) > MAX_DIMS
            or not all(_whole(d) and d >= 0 for d in shape)):
        raise LwlocalError(f"{where}: shape {str(shape)[:40]} is not a list of at most "
                           f"{MAX_DIMS} sizes")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(_whole(o) and o >= 0 for o in offsets) or offsets[0] > offsets[1]):
        raise LwlocalError(f"{where}: data_offsets {str(offsets)[:40]} are not a begin and an "
                           "end")
    begin, end = offsets
    itemsize = DTYPES[dtype].itemsize
    if math.prod(d or 1 for d in shape) * itemsize > MAX_BYTES:
        raise LwlocalError(f"{where}: shape {str(shape)[:60]} is too large")
    expected = math.prod(shape) * itemsize
    if end - begin != expected:
        raise LwlocalError(f"{where}: {end - begin} bytes for shape {shape} of {dtype} "
                           f"(expected {expected})")
    if end > data_size:
        raise LwlocalError(f"{where}: data offsets beyond the end of the file (truncated?)")
    return CheckpointTensor(name, path, dtype, tuple(shape), data_start + begin, end - begin)


def check_tiling(path: Path, infos: list[CheckpointTensor], data_start: int, data_size: int
                 ) -> None:
    """The tensors cover the data section exactly: no overlap, no gap, no trailing bytes."""
    at, previous = data_start, None
    for info in sorted(infos, key=lambda i: (i.start, i.nbytes)):
        if info.start < at:
            raise LwlocalError(f"{path}: tensors {previous} and {info.name} overlap")
        if info.start > at:
            raise LwlocalError(f"{path}: {info.start - at} bytes before tensor {info.name} "
                               "belong to no tensor")
        at, previous = info.start + info.nbytes, info.name
    if at != data_start + data_size:
        raise LwlocalError(f"{path}: {data_start + data_size - at} bytes after the last tensor "
                           "belong to no tensor")


def read_header(path: Path) -> list[CheckpointTensor]:
    """The tensors of one safetensors file, validated against the file."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            raw = handle.read(8)
            if len(raw) < 8:
                raise LwlocalError(f"{path}: truncated safetensors file (no header)")
            (header_len,) = struct.unpack("<Q", raw)
            if header_len > size - 8:
                raise LwlocalError(f"{path}: safetensors header of {header_len} bytes is larger "
                                   f"than the file ({size} bytes)")
            if header_len > MAX_HEADER:
                raise LwlocalError(f"{path}: safetensors header of {header_len} bytes is over "
                                   f"the {MAX_HEADER // 2**20} MiB limit")
            text = handle.read(header_len)
    except OSError as exc:
        raise LwlocalError(f"{path}: cannot read ({exc.strerror or exc})") from None
    header = parse_json(text, path, "the safetensors header")
    if not isinstance(header, dict):
        raise LwlocalError(f"{path}: the safetensors header is not a JSON object")
    if not isinstance(header.get("__metadata__", {}), dict):
        raise LwlocalError(f"{path}: the safetensors header's __metadata__ is not an object")
    data_start = 8 + header_len
    data_size = size - data_start
    infos = [tensor_info(path, name, entry, data_start, data_size)
             for name, entry in header.items() if name != "__metadata__"]
    check_tiling(path, infos, data_start, data_size)
    return infos


class Checkpoint:
    """A local Hugging Face model folder: config, tokenizer files, safetensors weights."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        if folder.is_dir():
            check_contained(folder)
        config = folder / "config.json"
        if not config.is_file():
            raise LwlocalError(f"{folder}: no config.json (not a Hugging Face model folder)")
        self.config: dict[str, Any] = parse_json(_read(config), config,
                                                 "the model configuration")
        if not isinstance(self.config, dict):
            raise LwlocalError(f"{config}: not a model configuration (a JSON object)")
        self.tensors: dict[str, CheckpointTensor] = {}
        index = self._index()
        for shard in self._shards(index):
            for info in read_header(shard):
                if info.name in self.tensors:
                    raise LwlocalError(f"{folder}: tensor {info.name} is in both "
                                       f"{self.tensors[info.name].file.name} and {shard.name}")
                self.tensors[info.name] = info
        if index is not None:
            self._check_index(index)
        if not self.tensors:
            raise LwlocalError(f"{folder}: the safetensors files hold no tensors")

    def _index(self) -> dict[str, str] | None:
        """The index's map from tensor to shard file, checked; None without an index."""
        path = self.folder / INDEX
        if not path.is_file():
            return None
        index = parse_json(_read(path), path, "the index")
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not all(
                isinstance(shard, str) for shard in weight_map.values()):
            raise LwlocalError(f"{path}: weight_map is not an object of tensor: shard file")
        for shard in set(weight_map.values()):
            if Path(shard).name != shard or shard in ("", ".", ".."):
                raise LwlocalError(f"{path}: shard {shard[:80]!r} is not a file in the "
                                   "checkpoint folder")
        return weight_map

    def _shards(self, weight_map: dict[str, str] | None) -> list[Path]:
        if weight_map is not None:
            shards = sorted({self.folder / name for name in weight_map.values()})
            if extra := sorted(set(self.folder.glob("*.safetensors")) - set(shards)):
                raise LwlocalError(f"{extra[0]}: a safetensors file that {INDEX} does not name "
                                   "(a stale index?)")
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

    def _check_index(self, weight_map: dict[str, str]) -> None:
        """Every tensor lies in the shard the index names for it."""
        for name, info in self.tensors.items():
            if name not in weight_map:
                raise LwlocalError(f"{self.folder / INDEX}: does not name tensor {name} (in "
                                   f"{info.file.name})")
            if weight_map[name] != info.file.name:
                raise LwlocalError(f"{self.folder / INDEX}: names {weight_map[name]} for "
                                   f"tensor {name}, which lies in {info.file.name}")
        for name, shard in weight_map.items():
            if name not in self.tensors:
                raise LwlocalError(f"{self.folder / INDEX}: tensor {name} is not in {shard}")

    def __iter__(self) -> Iterator[CheckpointTensor]:
        return iter(self.tensors.values())

    def load(self, info: CheckpointTensor) -> np.ndarray:
        """The tensor as a numpy array (f32 for bf16 sources)."""
        return self.load_rows(info, 0, info.shape[0] if info.shape else 1)

    def load_rows(self, info: CheckpointTensor, start: int, stop: int, widen: bool = True
                  ) -> np.ndarray:
        """Rows ``start:stop`` (first dimension) of the tensor, f32 for bf16 sources (their
        bits as uint16 when not ``widen``).

        Read into a fresh buffer rather than a memory map: mapped pages would stay resident
        until the end, and peak memory would grow to the size of the checkpoint."""
        dtype = DTYPES[info.dtype]
        rows = min(stop, info.shape[0]) - start if info.shape else 1
        row = math.prod(info.shape[1:])
        count = rows * row
        try:
            array = np.fromfile(info.file, dtype=dtype, count=count,
                                offset=info.start + start * row * dtype.itemsize)
        except OSError as exc:
            raise LwlocalError(f"{info.file}: cannot read ({exc.strerror or exc})") from None
        if array.size != count:
            raise LwlocalError(f"{info.file}: tensor {info.name}: the file became shorter while "
                               "being read")
        array = array.reshape((rows, *info.shape[1:]) if info.shape else ())
        if info.dtype == "BF16" and widen:
            return (array.astype(np.uint32) << 16).view(np.float32)
        return array

    @property
    def source_dtype(self) -> str:
        """The dtype most of the weights are stored in (by bytes)."""
        totals: dict[str, int] = {}
        for info in self.tensors.values():
            totals[info.dtype] = totals.get(info.dtype, 0) + info.nbytes
        return max(totals, key=lambda d: totals[d])
