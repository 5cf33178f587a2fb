"""Importance matrices in llama.cpp's file formats: GGUF (``llama-imatrix``'s default, read and
written) and the legacy ``.dat`` format (read)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import gguf
import numpy as np

from lwlocal.models.gguf_file import read_gguf
from lwlocal.models.gguf_header import GGUFArray
from lwlocal.util.destination import replacing
from lwlocal.util.errors import LwlocalError

SUMS = ".in_sum2"
COUNTS = ".counts"


@dataclass
class ImportanceMatrix:
    """Per weight matrix: the sum over calibration tokens of each input column's squared
    activation (``sums``, one row per expert or matrix) and the tokens counted (``counts``)."""

    sums: dict[str, np.ndarray] = field(default_factory=dict)
    counts: dict[str, np.ndarray] = field(default_factory=dict)
    chunk_count: int = 0
    chunk_size: int = 0
    datasets: list[str] = field(default_factory=list)

    def add(self, name: str, squares: np.ndarray, tokens: int) -> None:
        """Add one evaluation's column sums of squares (``(n_mat, n_cols)``) over ``tokens``."""
        if name not in self.sums:
            self.sums[name] = np.zeros(squares.shape, dtype=np.float64)
            self.counts[name] = np.zeros(squares.shape[0], dtype=np.float64)
        self.sums[name] += squares
        self.counts[name] += tokens

    def means(self) -> dict[str, np.ndarray]:
        """What llama.cpp's quantizer takes: per column the mean squared activation (1 where a
        matrix saw no token, as llama-quantize does)."""
        out = {}
        for name, sums in self.sums.items():
            counts = self.counts[name][:, None]
            mean = np.divide(sums, counts, out=np.ones_like(sums), where=counts > 0)
            out[name] = np.ascontiguousarray(mean, dtype=np.float32).reshape(-1)
        return out


def save(matrix: ImportanceMatrix, path: Path, architecture: str | None = None) -> None:
    """Write ``matrix`` as llama-imatrix's GGUF format, under a temporary name then renamed."""
    writer = gguf.GGUFWriter(None, architecture or "")
    writer.add_type("imatrix")
    writer.add_array(gguf.Keys.IMatrix.DATASETS, matrix.datasets)
    writer.add_uint32(gguf.Keys.IMatrix.CHUNK_COUNT, matrix.chunk_count)
    writer.add_uint32(gguf.Keys.IMatrix.CHUNK_SIZE, matrix.chunk_size)
    for name in sorted(matrix.sums):
        writer.add_tensor(name + SUMS, matrix.sums[name].astype(np.float32))
        writer.add_tensor(name + COUNTS, matrix.counts[name].astype(np.float32)[:, None])
    with replacing(path) as tmp:
        try:
            writer.write_header_to_file(tmp)
            writer.write_kv_data_to_file()
            writer.write_tensors_to_file()
        finally:
            writer.close()


def load(path: Path) -> ImportanceMatrix:
    """Read an importance matrix in GGUF or legacy ``.dat`` format."""
    if not path.is_file():
        raise LwlocalError(f"{path}: no such importance matrix file")
    with open(path, "rb") as f:
        magic = f.read(4)
    try:
        return _load_gguf(path) if magic == b"GGUF" else _load_legacy(path)
    except (ValueError, struct.error, UnicodeDecodeError, OSError) as exc:
        raise LwlocalError(f"{path}: not a readable importance matrix ({exc})") from exc


def _load_gguf(path: Path) -> ImportanceMatrix:
    header = read_gguf(path)
    tensors = {t.name: header.tensor_data(t).astype(np.float64) for t in header.tensors}
    names = sorted(n.removesuffix(SUMS) for n in tensors if n.endswith(SUMS))
    if not names:
        raise LwlocalError(f"{path}: a GGUF file but not an importance matrix (no *{SUMS} "
                           "tensors)")
    matrix = ImportanceMatrix()
    for name in names:
        if name + COUNTS not in tensors:
            raise LwlocalError(f"{path}: {name}{SUMS} has no {name}{COUNTS}")
        counts = tensors[name + COUNTS].reshape(-1)
        matrix.sums[name] = tensors[name + SUMS].reshape(len(counts), -1)
        matrix.counts[name] = counts
    fields, keys = header.fields, gguf.Keys.IMatrix
    chunks, size = fields.get(keys.CHUNK_COUNT, 0), fields.get(keys.CHUNK_SIZE, 0)
    if isinstance(chunks, int) and isinstance(size, int):
        matrix.chunk_count, matrix.chunk_size = chunks, size
    datasets = fields.get(keys.DATASETS)
    if isinstance(datasets, GGUFArray) and isinstance(datasets.values, list):
        matrix.datasets = [text.decode("utf-8", errors="replace") for text in datasets.values]
    return matrix


def _load_legacy(path: Path) -> ImportanceMatrix:
    """The ``.dat`` format: entries of (name, calls, values), where values are the mean squared
    activations times the number of calls; then the last call count and the dataset."""
    data = path.read_bytes()
    offset = 0

    def take(fmt: str) -> tuple:
        nonlocal offset
        values = struct.unpack_from(fmt, data, offset)
        offset += struct.calcsize(fmt)
        return values

    (n_entries,) = take("<i")
    if not 0 < n_entries < 1_000_000:
        raise ValueError(f"{n_entries} entries")
    matrix = ImportanceMatrix()
    for _ in range(n_entries):
        (length,) = take("<i")
        name = data[offset: offset + length].decode()
        offset += length
        ncall, nval = take("<ii")
        values = np.frombuffer(data, dtype="<f4", count=nval, offset=offset).astype(np.float64)
        offset += 4 * nval
        matrix.sums[name] = (values / ncall if ncall > 0 else values)[None, :]
        matrix.counts[name] = np.ones(1)
    if offset + 8 <= len(data):
        (matrix.chunk_count,) = take("<i")
        (length,) = take("<i")
        matrix.datasets = [data[offset: offset + length].decode()]
    return matrix
