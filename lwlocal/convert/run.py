"""HF checkpoint folder -> GGUF file, one tensor at a time, written under a temporary name."""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

import gguf
import numpy as np

from lwlocal.convert.safetensors_source import FLOAT_DTYPES, Checkpoint, CheckpointTensor
from lwlocal.convert.tokenizer import add_vocabulary, load_vocabulary
from lwlocal.families import architecture_for
from lwlocal.families.base import Architecture, Shape, Warn
from lwlocal.util.errors import LwlocalError, SettingError
from lwlocal.util.overwrite import refuse_input_as_output
from lwlocal.util.progress import Progress, ProgressCallback, ignore

Q = gguf.GGMLQuantizationType
OUTTYPES = {"f32": (Q.F32, gguf.LlamaFileType.ALL_F32),
            "f16": (Q.F16, gguf.LlamaFileType.MOSTLY_F16),
            "bf16": (Q.BF16, gguf.LlamaFileType.MOSTLY_BF16),
            "q8_0": (Q.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0)}


CHUNK_BYTES = 32 * 2**20  # source bytes converted at a time
F16_OVERFLOW = 65520.0  # the least magnitude f16 rounds to infinity
BF16_EXPONENT = 0x7F80  # a bf16's exponent bits


@dataclass(frozen=True)
class OutputTensor:
    """One output tensor: its GGUF name, its source (a checkpoint tensor or an array the
    architecture adds), its shape and type."""

    name: str
    shape: tuple[int, ...]
    qtype: gguf.GGMLQuantizationType
    info: CheckpointTensor | None = None
    array: np.ndarray | None = None


@dataclass(frozen=True)
class ConvertResult:
    path: Path
    architecture: str
    source_dtype: str
    outtype: str
    tensors: int
    bytes: int
    warnings: list[str]


def default_outtype(source_dtype: str) -> str:
    """f16 for f16/f32 sources, bf16 for bf16 sources (no precision lost either way)."""
    return "bf16" if source_dtype == "BF16" else "f16"


def tensor_type(name: str, shape: tuple[int, ...], wanted: gguf.GGMLQuantizationType
                ) -> gguf.GGMLQuantizationType:
    """F32 for 1-D tensors, norms and biases (as llama.cpp's converter); the wanted type else,
    when the rows fit its blocks."""
    if len(shape) == 1 or name.endswith(("_norm.weight", ".bias")) or wanted == Q.F32:
        return Q.F32
    block = gguf.GGML_QUANT_SIZES[wanted][0]
    return wanted if shape[-1] % block == 0 else Q.F16


def output_tensors(checkpoint: Checkpoint, arch: Architecture, dims: Shape,
                 wanted: gguf.GGMLQuantizationType, warn: Warn) -> list[OutputTensor]:
    """The output tensors, once the checkpoint is checked against its config: each tensor a
    float of the shape the config implies, none beyond its layers, none twice, and every
    tensor the layout needs present."""
    shapes = arch.tensor_shapes(dims)
    found: dict[str, OutputTensor] = {}
    for info in checkpoint:
        name = arch.gguf_name(info.name)
        if name is None:
            continue
        where = f"{checkpoint.folder}: tensor {info.name}"
        if (twin := found.get(name)) is not None and twin.info is not None:
            raise LwlocalError(f"{where}: becomes {name}, as tensor {twin.info.name} does")
        if name not in shapes:
            block = re.match(r"blk\.(\d+)\.", name)
            raise LwlocalError(f"{where}: " + (
                f"layer {block[1]}, beyond the {dims.n_layers} layers config.json gives" if block
                else f"the {arch.name} layout gives no shape for {name}"))
        if info.dtype not in FLOAT_DTYPES:
            raise LwlocalError(f"{where}: dtype {info.dtype} is not a floating-point weight")
        if info.shape != shapes[name]:
            raise LwlocalError(f"{where}: shape {list(info.shape)}, but config.json implies "
                               f"{list(shapes[name])}")
        found[name] = OutputTensor(name, info.shape, tensor_type(name, info.shape, wanted), info)
    for name in arch.required_tensors(dims):
        if name not in found:
            layers = f" (config.json gives {dims.n_layers} layers)" if "blk." in name else ""
            raise LwlocalError(f"{checkpoint.folder}: tensor {arch.hf_name(name)} is "
                               f"missing{layers}")
    extra = [OutputTensor(name, array.shape, Q.F32, array=array)
             for name, array in arch.extra_tensors(checkpoint.config, dims, warn).items()]
    return [*found.values(), *extra]


def encode(array: np.ndarray, qtype: gguf.GGMLQuantizationType, name: str) -> np.ndarray:
    """The bytes of tensor ``name`` in the output type; f16 refuses values it cannot hold."""
    if qtype == Q.F32:
        return np.ascontiguousarray(array, dtype=np.float32)
    if qtype == Q.F16:
        wider = array.dtype != np.float16 and array.size
        top = max(float(array.max()), -float(array.min())) if wider else 0.0
        if F16_OVERFLOW <= top < math.inf:
            raise SettingError(f"{{outtype}} f16: tensor {name} has values beyond f16's range "
                               f"({top:g}); choose bf16 or f32")
        return np.ascontiguousarray(array, dtype=np.float16)
    return gguf.quants.quantize(np.asarray(array, dtype=np.float32), qtype)


class Encoded:
    """One tensor's output bytes, made a block of rows at a time while they are written:
    ``GGUFWriter.write_tensor_data`` asks an array for its ``nbytes`` and ``tofile`` alone, so
    this stands in for one and no tensor is ever held whole."""

    def __init__(self, name: str, nbytes: int, chunks: Iterator[np.ndarray]) -> None:
        self.name, self.nbytes, self._chunks = name, nbytes, chunks
        self.on_block: Callable[[int], None] = lambda nbytes: None  # after each block written

    def tofile(self, handle: BinaryIO) -> None:
        written = 0
        for chunk in self._chunks:
            chunk.tofile(handle)
            written += chunk.nbytes
            self.on_block(chunk.nbytes)
        if written != self.nbytes:
            raise LwlocalError(f"tensor {self.name}: {written} bytes made, {self.nbytes} expected")


CHECK_VALUES = 1 << 20  # values checked at a time: the check's own arrays stay a few MiB


def check_finite(array: np.ndarray, info: CheckpointTensor, checkpoint: Checkpoint
                 ) -> np.ndarray:
    """``array``, rows of tensor ``info`` as read (floats, or bf16 bits as uint16), refused in
    one line naming the tensor if it holds a NaN or an infinity."""
    flat = array.reshape(-1)  # a view: the rows as read are contiguous
    if any(_nonfinite(flat[start:start + CHECK_VALUES])
           for start in range(0, flat.size, CHECK_VALUES)):
        raise SettingError(f"{checkpoint.folder}: tensor {info.name} holds NaN or infinite "
                           "values (a damaged checkpoint?); {allow_nonfinite} converts them "
                           "as they are")
    return array


def _nonfinite(values: np.ndarray) -> bool:
    """Whether ``values`` (floats, or bf16 bits as uint16) hold a NaN or an infinity."""
    if values.dtype == np.uint16:  # bf16 bits: an exponent of all ones is NaN or infinity
        return bool(((values & BF16_EXPONENT) == BF16_EXPONENT).any())
    return not bool(np.isfinite(values).all())


def encode_tensor(checkpoint: Checkpoint, arch: Architecture, dims: Shape, t: OutputTensor,
                  allow_nonfinite: bool = False) -> Encoded:
    """The output bytes of one tensor, its values checked finite unless ``allow_nonfinite``.
    Tensors without a transform are read and converted a block of rows (``CHUNK_BYTES`` of
    source) at a time, as they are written."""
    nbytes = _nbytes(t.shape, t.qtype)
    if t.info is None:
        assert t.array is not None  # a tensor the converter adds carries its values
        return Encoded(t.name, nbytes, iter([encode(t.array, t.qtype, t.name)]))
    info = t.info

    def rows(start: int, stop: int, widen: bool = True) -> np.ndarray:
        array = checkpoint.load_rows(info, start, stop, widen)
        return array if allow_nonfinite else check_finite(array, info, checkpoint)

    if arch.transforms_tensor(t.name) or len(t.shape) < 2:
        whole = rows(0, info.shape[0] if info.shape else 1)
        array = arch.transform(t.name, whole, dims)
        return Encoded(t.name, nbytes, iter([encode(array, t.qtype, t.name)]))
    count = t.shape[0]
    step = max(1, CHUNK_BYTES // (info.nbytes // count))
    if t.qtype == Q.BF16 and info.dtype == "BF16":  # copied: only a NaN's payload could differ
        chunks = (rows(start, start + step, widen=False) for start in range(0, count, step))
    else:
        chunks = (encode(rows(start, start + step), t.qtype, t.name)
                  for start in range(0, count, step))
    return Encoded(t.name, nbytes, chunks)


def convert(src: Path, out: Path, outtype: str | None = None,
            progress: ProgressCallback = ignore, allow_nonfinite: bool = False
            ) -> ConvertResult:
    """Convert the checkpoint folder ``src`` to the GGUF file ``out``. The checkpoint's files,
    its config and its tensors against the config are checked before anything is written;
    each tensor's values, as it is converted, are checked finite unless ``allow_nonfinite``
    (a NaN or an infinity stops the conversion, and nothing is left at ``out``)."""
    refuse_input_as_output(out, {"input checkpoint": src})
    checkpoint = Checkpoint(src)
    arch = architecture_for(checkpoint.config, checkpoint.folder / "config.json")
    outtype = outtype or default_outtype(checkpoint.source_dtype)
    if outtype not in OUTTYPES:
        raise SettingError(f"{{outtype}} {outtype}: choose one of {', '.join(OUTTYPES)}")
    qtype, file_type = OUTTYPES[outtype]
    warnings: list[str] = []
    warn = _once(warnings)
    dims = arch.shape(checkpoint.config, warn)
    metadata = arch.metadata(checkpoint.config, warn)
    tensors = output_tensors(checkpoint, arch, dims, qtype, warn)
    vocab = load_vocabulary(src, dims.vocab_size, arch)

    writer = gguf.GGUFWriter(None, arch.gguf_arch)
    writer.add_type("model")
    writer.add_name(src.resolve().name)
    for key, value in metadata.items():
        _add(writer, key.format(arch=arch.gguf_arch), value)
    writer.add_file_type(int(file_type))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    add_vocabulary(writer, vocab)
    for t in tensors:
        nbytes = _nbytes(t.shape, t.qtype)
        writer.add_tensor_info(t.name, t.shape, np.dtype(np.float32), nbytes, raw_dtype=t.qtype)
    total = sum(_nbytes(t.shape, t.qtype) for t in tensors)

    tmp = out.with_name(f".{out.name}.partial")
    try:
        writer.write_header_to_file(tmp)
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        done = 0
        for i, t in enumerate(tensors, 1):
            def report(nbytes: int, i: int = i, t: OutputTensor = t) -> None:
                nonlocal done
                done += nbytes
                progress(Progress("convert", step=i, steps=len(tensors), done=done, total=total,
                                  message=t.name))

            encoded = encode_tensor(checkpoint, arch, dims, t, allow_nonfinite)
            encoded.on_block = report  # progress a block of rows at a time: 32 MB of source
            writer.write_tensor_data(cast(np.ndarray, encoded))
        writer.close()
        os.replace(tmp, out)
    except BaseException as exc:  # Ctrl-C too: no partial file is left behind
        with contextlib.suppress(OSError):  # closing flushes, and a full disk fails again
            writer.close()
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):  # a full disk, a vanished folder: one line, not a trace
            raise LwlocalError(f"{out}: cannot write ({exc.strerror or exc})") from exc
        raise
    return ConvertResult(out, arch.gguf_arch, checkpoint.source_dtype, outtype, len(tensors),
                         total, warnings)


def _once(warnings: list[str]) -> Callable[[str], None]:
    """Add a warning unless it is there already (shape and metadata read the same keys)."""
    return lambda text: None if text in warnings else warnings.append(text)


def _nbytes(shape: tuple[int, ...], qtype: gguf.GGMLQuantizationType) -> int:
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    return int(np.prod(shape)) // block * size


def _add(writer: gguf.GGUFWriter, key: str, value: object) -> None:
    if isinstance(value, bool):
        writer.add_bool(key, value)
    elif isinstance(value, int):
        writer.add_uint32(key, value)
    elif isinstance(value, float):
        writer.add_float32(key, value)
    else:
        writer.add_string(key, str(value))
