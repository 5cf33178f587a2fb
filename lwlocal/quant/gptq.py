"""GPTQ checkpoints (2/3/4/8-bit) of the LongWriter architectures through GPTQModel, calibrated
on the same long-form text as the GGUF importance matrix; for transformers, vLLM and ExLlama on
consumer GPUs. Runs on the CPU, or on a GPU when torch sees one.

The output is a standard GPTQ checkpoint (packed ``qweight``/``qzeros``/``scales``/``g_idx``,
``quantization_config`` in ``config.json``, the tokenizer files), written to a temporary folder
and renamed when complete. A remote-code layout is first laid out as one transformers loads
natively, and fused projections GPTQModel quantizes apart are joined again, as the family says
(``Architecture.native_relayout``, ``gptq_join``: GLM-4's fused gate and up projections).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lwlocal.families import architecture_for
from lwlocal.families.base import Architecture
from lwlocal.models.folder import check_contained
from lwlocal.quant.calibration import spread_chunks
from lwlocal.util.cpu import default_threads
from lwlocal.util.errors import LwlocalError, SettingError
from lwlocal.util.offline import hf_offline, restore_environment
from lwlocal.util.overwrite import refuse_input_as_output
from lwlocal.util.progress import Progress, ProgressCallback, ignore
from lwlocal.util.quiet import quiet_stderr

BITS = (2, 3, 4, 8)
INSTALL_HINT = "pip install 'lwlocal[gptq]'"


@dataclass(frozen=True)
class GptqRequest:
    """What to quantize and how: ``group_size`` -1 is one group per row; ``samples`` chunks of
    ``seq_len`` tokens of calibration text."""

    src: Path
    out: Path
    bits: int = 4
    group_size: int = 128
    desc_act: bool = False
    sym: bool = True
    samples: int = 32
    seq_len: int = 512


@dataclass(frozen=True)
class GptqResult:
    out: Path
    layout: str
    bits: int
    group_size: int
    sym: bool
    samples: int
    seq_len: int
    size_bytes: int
    seconds: float
    device: str

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "out": str(self.out)}


def read_config(src: Path) -> dict[str, Any]:
    """The checkpoint folder's configuration, once its files are known to be its own."""
    if src.is_dir():
        check_contained(src)
    path = src / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise LwlocalError(f"{src}: no config.json; not a Hugging Face checkpoint folder") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise LwlocalError(f"{path}: not readable JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise LwlocalError(f"{path}: not a model configuration (a JSON object)")
    return config


def input_sizes(config: dict[str, Any], layout: Architecture) -> dict[str, int]:
    """The input size of each kind of quantized projection."""
    dims = layout.shape(config, lambda _: None)
    return {"the attention projections": dims.hidden_size,
            "the attention output": dims.n_heads * dims.head_dim,
            "the MLP down projection": dims.ffn_size}


def check_request(request: GptqRequest) -> Architecture:
    """Refuse what cannot work, in one line, before anything loads; the source's layout."""
    if request.bits not in BITS:
        raise SettingError(f"{{bits}} {request.bits}: GPTQ takes 2, 3, 4 or 8 bits")
    if request.samples < 1 or request.seq_len < 16:
        raise SettingError("{samples} must be at least 1 and {seq_len} at least 16")
    src = request.src
    if not src.is_dir():
        raise LwlocalError(f"{src}: no such checkpoint folder")
    config = read_config(src)
    layout = architecture_for(config, src, " for GPTQ")
    if request.group_size != -1:
        if request.group_size <= 0:
            raise SettingError(f"{{group_size}} {request.group_size}: must be positive, or -1")
        try:
            sizes = input_sizes(config, layout)
        except KeyError as exc:
            raise LwlocalError(f"{src / 'config.json'}: lacks {exc}") from exc
        for what, size in sizes.items():
            if size % request.group_size:
                raise SettingError(f"{{group_size}} {request.group_size} does not divide the "
                                   f"input size {size} of {what} in {src}")
    if layout.gptq_join and request.desc_act:
        raise SettingError(f"{{desc_act}}: the {layout.name} layout's joined projections need one "
                           "group order for their parts; quantize it without {desc_act}")
    # the native relayout makes a tokenizer.json of a tiktoken tokenizer.model
    tiktoken = layout.native_relayout is not None and (src / "tokenizer.model").is_file()
    if not (src / "tokenizer.json").is_file() and not tiktoken:
        raise LwlocalError(f"{src}: no tokenizer (tokenizer.json); the checkpoint needs one")
    out = request.out
    refuse_input_as_output(out, {"input checkpoint": src})
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise LwlocalError(f"{out}: already exists; remove it or choose another folder")
    if not (out.parent if str(out.parent) else Path(".")).is_dir():
        raise LwlocalError(f"{out}: folder {out.parent} does not exist")
    return layout


def calibration(folder: Path, text: str, label: str, request: GptqRequest
                ) -> list[dict[str, list[int]]]:
    """The calibration text as ``samples`` chunks of ``seq_len`` tokens of the model's own
    tokenizer (spread over the whole text)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    tokens = tokenizer(text, add_special_tokens=False)["input_ids"]
    chunks = spread_chunks(tokens, request.samples, request.seq_len, label,
                           "give a longer {text}, fewer {samples} or a shorter {seq_len}")
    return [{"input_ids": chunk, "attention_mask": [1] * len(chunk)} for chunk in chunks]


@contextlib.contextmanager
def logged_to(folder: Path) -> Iterator[None]:
    """Run in ``folder`` with standard output going to ``folder/gptq.log``: GPTQModel prints
    hundreds of lines of tables to standard output (where ``--json`` goes) and writes its log
    folder into the working directory."""
    before = Path.cwd()
    with quiet_stderr(1, into=folder / "gptq.log"):
        os.chdir(folder)
        try:
            yield
        finally:
            os.chdir(before)


HF_CACHE_VARIABLES = ("HF_HOME", "HF_HUB_CACHE", "TRANSFORMERS_CACHE", "HF_MODULES_CACHE")


@contextlib.contextmanager
def hf_cache_kept() -> Iterator[None]:
    """Undo what importing GPTQModel does to the Hugging Face cache variables (its tokenicer
    points HF_HOME and HF_HUB_CACHE at a folder of its own in /tmp), so downloads go on using
    the user's cache."""
    before = {name: os.environ.get(name) for name in HF_CACHE_VARIABLES}
    try:
        yield
    finally:
        restore_environment(before)


def _import_gptqmodel(folder: Path) -> tuple[Any, Any, Any, Any]:
    """torch and GPTQModel, imported quietly (their optional kernels complain as they load)."""
    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", str(max(2, default_threads())))
    try:
        with quiet_stderr(), logged_to(folder), hf_cache_kept():
            import torch
            import transformers
            from gptqmodel import BACKEND, GPTQModel, QuantizeConfig
    except ImportError as exc:
        raise LwlocalError(f"GPTQ needs GPTQModel and torch: {INSTALL_HINT} ({exc})") from exc
    for name in ("tokenicer", "transformers", "gptqmodel"):
        logging.getLogger(name).setLevel(logging.WARNING)
    transformers.utils.logging.disable_progress_bar()  # its shard bars would cut through ours
    return torch, GPTQModel, QuantizeConfig, BACKEND


def _layer_progress(model: Any, progress: ProgressCallback) -> list[Any]:
    """Report each decoder layer as GPTQModel reaches it (layers are quantized in order)."""
    layers = model.model.model.layers
    seen: set[int] = set()

    def hook(index: int) -> Any:
        def reached(*_: Any) -> None:
            if index not in seen:
                seen.add(index)
                progress(Progress("gptq", step=index + 1, steps=len(layers),
                                  done=len(seen) - 1, total=len(layers)))
        return reached

    return [layer.register_forward_pre_hook(hook(i)) for i, layer in enumerate(layers)]


def quantize_gptq(request: GptqRequest, text: str, label: str,
                  progress: ProgressCallback = ignore) -> GptqResult:
    """Quantize ``request.src`` to a GPTQ checkpoint at ``request.out``, offline: the source
    is given to the libraries as an absolute path (a relative one would be read as a hub id
    once GPTQModel works in its own folder), with the Hugging Face libraries offline."""
    layout = check_request(request)
    started = time.monotonic()
    out = request.out
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent if str(out.parent)
                                 else ".")).resolve()  # GPTQModel runs in it: no relative path
    try:
        with hf_offline():
            device = _quantize(request, layout, text, label, work, progress)
        if out.is_dir():
            out.rmdir()  # empty (checked)
        os.replace(work / "checkpoint", out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    return GptqResult(out, layout.name, request.bits, request.group_size, request.sym,
                      request.samples, request.seq_len, size, time.monotonic() - started, device)


def _quantize(request: GptqRequest, layout: Architecture, text: str, label: str, work: Path,
              progress: ProgressCallback) -> str:
    """The quantized checkpoint in ``work/checkpoint``; the device it was made on."""
    torch, GPTQModel, QuantizeConfig, BACKEND = _import_gptqmodel(work)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    src = request.src.resolve()
    relayout = layout.native_relayout
    source = relayout(src, work / "native") if relayout else src
    samples = calibration(source, text, label, request)
    progress(Progress("gptq", message="loading"))
    saved = work / "checkpoint"
    with logged_to(work):
        config = QuantizeConfig(bits=request.bits, group_size=request.group_size,
                                desc_act=request.desc_act, sym=request.sym)
        model = GPTQModel.load(str(source), config, device=device, dtype=torch.float16)
        hooks = _layer_progress(model, progress)
        # the plain torch kernel for GPTQModel's own use after quantizing: on a GPU its
        # automatic choice may build kernels that download their sources (Machete, Hopper)
        model.quantize(samples, batch_size=1,
                       backend=BACKEND.GPTQ_TORCH if device == "cuda" else BACKEND.AUTO)
        for hook in hooks:
            hook.remove()
        model.save(str(saved))
    if layout.gptq_join:
        layout.gptq_join(saved)
    return str(device)
