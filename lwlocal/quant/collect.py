"""Collect an importance matrix while llama.cpp evaluates calibration text: for every weight
matrix of the transformer blocks, the sum of each input column's squared activation, through
the evaluation callback ``llama-imatrix`` uses."""

from __future__ import annotations

import ctypes
import time
from pathlib import Path

import llama_cpp
import numpy as np
from llama_cpp import _ggml

from lwlocal.quant.evaluator import Evaluator, check_chunking
from lwlocal.quant.imatrix_file import ImportanceMatrix
from lwlocal.util.errors import LwlocalError
from lwlocal.util.progress import Progress, ProgressCallback, ignore

MIN_ROWS = 16  # llama-imatrix skips multiplications of fewer tokens (single-token decoding)


class GgmlTensor(ctypes.Structure):
    """``struct ggml_tensor`` of the ggml that llama-cpp-python ships (ggml.h)."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("buffer", ctypes.c_void_p),
        ("ne", ctypes.c_int64 * 4),
        ("nb", ctypes.c_size_t * 4),
        ("op", ctypes.c_int),
        ("op_params", ctypes.c_int32 * 16),
        ("flags", ctypes.c_int32),
        ("src", ctypes.c_void_p * 10),
        ("view_src", ctypes.c_void_p),
        ("view_offs", ctypes.c_size_t),
        ("data", ctypes.c_void_p),
        ("name", ctypes.c_char * 64),
        ("extra", ctypes.c_void_p),
        ("padding", ctypes.c_char * 8),
    ]


_lib = _ggml.libggml
_lib.ggml_op_name.argtypes = [ctypes.c_int]
_lib.ggml_op_name.restype = ctypes.c_char_p
_lib.ggml_nbytes.argtypes = [ctypes.c_void_p]
_lib.ggml_nbytes.restype = ctypes.c_size_t
_lib.ggml_backend_tensor_get.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
                                         ctypes.c_size_t]
_lib.ggml_backend_tensor_get.restype = None


def weight_name(tensor_name: bytes) -> str:
    """The model tensor a graph tensor stands for: ``CPU#blk.0.ffn_up.weight#0`` (a copy made
    for a backend) names ``blk.0.ffn_up.weight``."""
    name = tensor_name.decode(errors="replace")
    return name.split("#")[1] if "#" in name else name


class ActivationCollector:
    """The evaluation callback: asks for every ``MUL_MAT`` of a block weight by at least
    ``MIN_ROWS`` f32 activations, then adds the activations' squares per column."""

    def __init__(self, matrix: ImportanceMatrix) -> None:
        self.matrix = matrix
        self._ops: dict[int, bytes] = {}

    def _op(self, code: int) -> bytes:
        if code not in self._ops:
            self._ops[code] = _lib.ggml_op_name(code)
        return self._ops[code]

    def __call__(self, address: int, ask: bool) -> bool:
        node = GgmlTensor.from_address(address)
        if self._op(node.op) != b"MUL_MAT":
            return not ask  # never asked for; keep computing if called anyway
        weight = GgmlTensor.from_address(node.src[0])
        x = GgmlTensor.from_address(node.src[1])
        name = weight_name(weight.name)
        if ask:
            return (x.ne[1] >= MIN_ROWS and x.type == llama_cpp.GGML_TYPE_F32
                    and name.startswith("blk."))
        self._add(name, weight, node.src[1], x)
        return True

    def _add(self, name: str, weight: GgmlTensor, address: int, x: GgmlTensor) -> None:
        raw = np.empty(_lib.ggml_nbytes(address), dtype=np.uint8)
        _lib.ggml_backend_tensor_get(address, raw.ctypes.data, 0, raw.nbytes)
        ne0, ne1, ne2, ne3 = x.ne
        rows = np.lib.stride_tricks.as_strided(
            raw.view(np.float32), shape=(ne3, ne2, ne1, ne0),
            strides=(x.nb[3], x.nb[2], x.nb[1], x.nb[0]))
        squares = np.square(rows, dtype=np.float64).sum(axis=2)  # (ne3, ne2, ne0)
        if not np.isfinite(squares).all():
            raise LwlocalError(f"non-finite activations entering {name}")
        m2, m3 = weight.ne[2], weight.ne[3]
        per_matrix = np.zeros((m2 * m3, ne0))
        for i3 in range(ne3):
            for i2 in range(ne2):
                per_matrix[(i3 % m3) * m2 + (i2 % m2)] += squares[i3, i2]
        self.matrix.add(name, per_matrix, ne1 * ne2 * ne3 // (m2 * m3))


def collect(model: Path, text: str, *, n_ctx: int = 512, chunks: int | None = None,
            dataset: str = "", n_threads: int | None = None,
            progress: ProgressCallback = ignore) -> ImportanceMatrix:
    """The importance matrix of ``model`` over ``text``, evaluated in ``n_ctx``-token chunks
    (all of them, or the first ``chunks``)."""
    check_chunking(n_ctx, chunks, n_threads)
    matrix = ImportanceMatrix(chunk_size=n_ctx, datasets=[dataset] if dataset else [])
    with Evaluator(model, n_ctx=n_ctx, n_threads=n_threads,
                   on_tensor=ActivationCollector(matrix)) as evaluator:
        pieces = evaluator.chunks(text, chunks, dataset or "the text")
        start = time.monotonic()
        steps = len(pieces)
        for i, chunk in enumerate(pieces, 1):
            evaluator.logits(chunk)
            matrix.chunk_count = i
            progress(Progress("imatrix", step=i, steps=steps, done=i * n_ctx,
                              total=steps * n_ctx,
                              rate=i * n_ctx / (time.monotonic() - start)))
    return matrix
