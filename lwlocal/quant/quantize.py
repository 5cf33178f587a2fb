"""GGUF -> quantized GGUF through llama.cpp's own quantizer (``llama_model_quantize``), with an
optional importance matrix, written under a temporary name and renamed."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import re
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import llama_cpp
import numpy as np

from lwlocal.convert.run import ConvertResult, convert
from lwlocal.models.gguf_file import check_gguf, read_gguf
from lwlocal.quant.imatrix_file import ImportanceMatrix, load
from lwlocal.quant.types import NEEDS_IMATRIX, UNQUANTIZED, quant_type
from lwlocal.util.cpu import check_threads, default_threads
from lwlocal.util.destination import replacing
from lwlocal.util.errors import LwlocalError, SettingError
from lwlocal.util.overwrite import refuse_input_as_output
from lwlocal.util.progress import Progress, ProgressCallback, ignore

_TENSOR_LINE = re.compile(rb"\[\s*(\d+)/\s*(\d+)\]\s+(\S+).*type =\s*(\w+)")
_CONVERTING = re.compile(rb"converting to (\w+)")
_QUANT_SIZE = re.compile(rb"quant size\s*=\s*[\d.]+ MiB \(([\d.]+) BPW\)")
_LOG_WARN, _LOG_ERROR = 3, 4  # ggml_log_level
_PR_SET_PDEATHSIG = 1  # prctl(2)
# Bytes of tensor rows llama.cpp's quantizer holds at once (source, f32 copy, output). Its
# default, 8 GiB, takes whole tensors: a 151552 x 4096 embedding widened to f32 is 2.4 GiB on its
# own (peak RSS 4143 MiB quantizing a 4-layer GLM-4-9B-wide f16 GGUF). Rows are quantized
# independently, so the output is the same.
QUANT_BUFFER_BYTES = 64 * 2**20


@dataclass(frozen=True)
class QuantizeResult:
    path: Path
    type: str
    bytes: int
    bits_per_weight: float
    seconds: float
    tensor_types: dict[str, int]
    imatrix_entries: int = 0
    warnings: list[str] = field(default_factory=list)


def _matrix_columns(src: Path) -> dict[str, int]:
    """Input columns of each 2-D (or stacked) weight of a GGUF."""
    return {t.name: int(t.shape[0]) for t in read_gguf(src).tensors if len(t.shape) >= 2}


def check_imatrix(matrix: ImportanceMatrix, path: Path, src: Path) -> None:
    """Refuse an importance matrix made for another model."""
    columns = _matrix_columns(src)
    for name, sums in matrix.sums.items():
        if columns.get(name) != sums.shape[1]:
            what = "not in" if name not in columns else f"{sums.shape[1]} columns, not those of"
            raise LwlocalError(f"{path}: made for another model ({name}: {what} {src})")


class _ImatrixArray:
    """``llama_model_imatrix_data[]`` (null-terminated) over numpy arrays kept alive here."""

    def __init__(self, means: dict[str, np.ndarray]) -> None:
        self._arrays = means
        self.entries = (llama_cpp.llama_model_imatrix_data * (len(means) + 1))()
        for slot, (name, values) in zip(self.entries, means.items(), strict=False):
            slot.name = name.encode()
            slot.data = values.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            slot.size = values.size


def _overrides(values: dict[str, str | int]) -> ctypes.Array:
    """``llama_model_kv_override[]`` (empty-key terminated), as llama-quantize records the
    importance matrix it used."""
    array = (llama_cpp.llama_model_kv_override * (len(values) + 1))()
    for slot, (key, value) in zip(array, values.items(), strict=False):
        slot.key = key.encode()
        if isinstance(value, int):
            slot.tag = llama_cpp.LLAMA_KV_OVERRIDE_TYPE_INT
            slot.value.val_i64 = value
        else:
            slot.tag = llama_cpp.LLAMA_KV_OVERRIDE_TYPE_STR
            slot.value.val_str = value.encode()[:127]
    return array


class _QuantizerLog:
    """Reads llama.cpp's log while the quantizer runs: tensor lines become progress events and
    the tally of tensor types, its summary gives the bits per weight, warnings about fallback
    types and errors are kept."""

    def __init__(self, progress: ProgressCallback) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.types: dict[str, str] = {}
        self.source_types: dict[str, str] = {}
        self.bits_per_weight = 0.0
        self._tensor = ""
        self._progress = progress

    def read(self, level: int, text: bytes) -> None:
        if level == _LOG_ERROR:
            self.errors.append(text.decode(errors="replace").strip())
        elif level == _LOG_WARN and b"required fallback quantization" in text:
            self.warnings.append("llama.cpp: " + text.decode(errors="replace").split(
                "WARNING: ")[-1].strip() + " (rows not a multiple of the type's block)")
        elif match := _TENSOR_LINE.search(text):
            step, steps, name, kind = match.groups()
            self._tensor = name.decode()
            self.types[self._tensor] = self.source_types[self._tensor] = kind.decode().upper()
            self._progress(Progress("quantize", step=int(step), steps=int(steps),
                                    done=int(step), total=int(steps), message=self._tensor))
        elif match := _CONVERTING.search(text):
            self.types[self._tensor] = match.group(1).decode().upper()
        elif match := _QUANT_SIZE.search(text):
            self.bits_per_weight = float(match.group(1))


@dataclass(frozen=True)
class _Request:
    """What the quantizer's process is asked to do (it is given ``out`` apart)."""

    src: Path
    ftype: int
    threads: int
    imatrix: dict[str, np.ndarray] | None
    recorded: dict[str, str | int]
    parent: int  # the process that waits for it


def _quantize_here(request: _Request, out: Path, log: Connection) -> None:
    """The quantizer's process: llama.cpp's quantizer writes ``out``; its log lines and then
    its status go to ``log``. Ctrl-C is the parent's to handle: it ends this process; and where
    the parent is gone (``kill -9``), so is this process (Linux's parent-death signal), so that
    nothing goes on writing ``out`` for a rerun to meet."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _end_with_parent(request.parent)

    def send(level: int, text: bytes, _user_data: int) -> None:
        log.send((level, text or b""))

    callback = llama_cpp.llama_log_callback(send)
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = request.ftype
    params.nthread = request.threads
    params.allow_requantize = True  # a quantized input is quantized again, with a warning
    params.max_buf_size = QUANT_BUFFER_BYTES
    if request.imatrix is not None:
        data = _ImatrixArray(request.imatrix)
        params.imatrix = ctypes.cast(data.entries, ctypes.POINTER(
            llama_cpp.llama_model_imatrix_data))
    if request.recorded:
        overrides = _overrides(request.recorded)
        params.kv_overrides = ctypes.cast(overrides, ctypes.POINTER(
            llama_cpp.llama_model_kv_override))
    status = llama_cpp.llama_model_quantize(str(request.src).encode(), str(out).encode(),
                                            ctypes.byref(params))
    log.send(status)


def _end_with_parent(parent: int) -> None:
    """Have the kernel kill this process when its parent (pid ``parent``) dies
    (``PR_SET_PDEATHSIG``, Linux), and end at once where it died already; elsewhere, nothing."""
    if not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the signal was asked for
        os._exit(1)


def _run_in_child(request: _Request, out: Path, log: _QuantizerLog) -> int:
    """Run the quantizer in a process of its own, reading its log as it goes, and return its
    status. llama.cpp's quantizer cannot be stopped once called; a process can: on Ctrl-C (or
    any failure here) it is ended, so nothing goes on writing, or calling back into an
    interpreter that is shutting down, after lwlocal has stopped."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_quantize_here, args=(request, out, send), daemon=True)
    child.start()
    send.close()
    try:
        while True:
            try:
                message = receive.recv()
            except (EOFError, OSError):  # it ended without a status: killed, out of memory
                child.join()
                return child.exitcode or -1
            if isinstance(message, int):
                child.join()
                return message
            log.read(*message)
    finally:
        if child.is_alive():
            child.kill()
            child.join()
        receive.close()


def check_request(qtype: str, imatrix: Path | None, model: Path, n_threads: int | None = None
                  ) -> tuple[str, int]:
    """The canonical type name and llama.cpp file type, once the type is known and has the
    importance matrix it needs (and the thread count is one llama.cpp can run)."""
    check_threads(n_threads)
    name, ftype = quant_type(qtype)
    if name in NEEDS_IMATRIX and imatrix is None:
        raise SettingError(f"{name} needs an importance matrix: make one with `lwlocal imatrix "
                           f"{model} -o imatrix.gguf`, then pass {{imatrix}} imatrix.gguf")
    return name, ftype


def convert_and_quantize(src: Path, out: Path, qtype: str, *, imatrix: Path | None = None,
                         n_threads: int | None = None, progress: ProgressCallback = ignore,
                         allow_nonfinite: bool = False) -> tuple[ConvertResult, QuantizeResult]:
    """HF checkpoint -> quantized GGUF, through a temporary f16 (bf16 for bf16 weights) GGUF
    beside ``out`` that is removed afterwards."""
    check_request(qtype, imatrix, src, n_threads)
    refuse_input_as_output(out, {"input checkpoint": src, "importance matrix": imatrix})
    between = out.with_name(f".{out.name}.unquantized.partial")
    try:
        converted = convert(src, between, None, progress, allow_nonfinite)
        return converted, quantize(between, out, qtype, imatrix=imatrix, n_threads=n_threads,
                                   progress=progress)
    finally:
        between.unlink(missing_ok=True)


def quantize(src: Path, out: Path, qtype: str, *, imatrix: Path | None = None,
             n_threads: int | None = None, progress: ProgressCallback = ignore
             ) -> QuantizeResult:
    """Quantize the GGUF ``src`` to ``out`` as ``qtype`` (a llama-quantize type name)."""
    name, ftype = check_request(qtype, imatrix, src, n_threads)
    check_gguf(src)
    refuse_input_as_output(out, {"input model": src, "importance matrix": imatrix})
    entries = 0
    recorded: dict[str, str | int] = {}
    means = None
    if imatrix is not None:
        matrix = load(imatrix)
        check_imatrix(matrix, imatrix, src)
        means = matrix.means()
        entries = len(matrix.sums)
        recorded = {"quantize.imatrix.file": str(imatrix),
                    "quantize.imatrix.entries_count": entries}
        if matrix.datasets:
            recorded["quantize.imatrix.dataset"] = matrix.datasets[0]
        if matrix.chunk_count:
            recorded["quantize.imatrix.chunks_count"] = matrix.chunk_count
    request = _Request(src, ftype, n_threads or default_threads(), means, recorded,
                       os.getpid())
    start = time.monotonic()
    log = _QuantizerLog(progress)
    with replacing(out) as tmp:
        status = _run_in_child(request, tmp, log)
        if status != 0:
            reason = "; ".join(log.errors) or f"status {status}"
            raise LwlocalError(f"{src}: llama.cpp's quantizer failed: {reason}")
    warnings = log.warnings
    quantized = Counter(t for t in log.source_types.values() if t not in UNQUANTIZED)
    if quantized and name not in UNQUANTIZED:
        warnings.insert(0, f"{src} was already quantized ({', '.join(quantized)}); "
                        "re-quantizing adds to its error: quantize from an f16/bf16/f32 GGUF "
                        "when you can")
    return QuantizeResult(out, name, out.stat().st_size, log.bits_per_weight,
                          time.monotonic() - start, dict(Counter(log.types.values())
                                                         .most_common()), entries, warnings)
