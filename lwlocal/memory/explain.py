"""A memory plan in words: one line per choice, and what would fit when nothing does."""

from __future__ import annotations

from lwlocal.memory.allocations import GiB, Memory, kv_bytes
from lwlocal.memory.context_need import TOKENS_MARGIN, Need
from lwlocal.memory.context_settings import DEFAULT_BATCH, Overrides, Settings
from lwlocal.memory.hardware import Machine
from lwlocal.memory.model_shape import ModelShape
from lwlocal.quant.types import NOMINAL_BPW
from lwlocal.runtime.llama_build import GPU_BUILD_HINT
from lwlocal.util.cpu import THREADS_ENV, threads_from_env


def _gib(n: float) -> str:
    return f"{n / GiB:.2f} GiB"


def explain(shape: ModelShape, s: Settings, need: Need, fixed: Overrides, memory: Memory,
            ram: int, vram: int, here: Machine | None, draft: ModelShape | None) -> list[str]:
    """One plain line per choice, with what the job, ``here`` (the machine planned for; None:
    another one) and the ``draft`` model speculating beside the model add."""
    lines = []
    if need.minimum > shape.context_length:
        lines.append(f"the job needs {need.minimum} tokens of context but {shape.name} was "
                     f"trained on {shape.context_length}")
    lines += _choices(shape, s, need, fixed, memory, ram, vram, _no_gpu(here))
    if here is not None and s.n_gpu_layers and here.gpus > 1:
        lines.append(f"{here.gpus} GPUs found: the plan and the engine use the first one "
                     "alone (a split over several GPUs is not planned)")
    if draft is not None:
        beside = memory.parts["ram_draft"] + memory.parts.get("vram_draft", 0)
        lines.append(f"the draft model {draft.name} speculates beside it: its weights, "
                     f"context and f16 KV cache take {_gib(beside)}")
    return lines


def _no_gpu(here: Machine | None) -> str:
    """Why a plan has no VRAM to use."""
    if here is not None and not here.offload and here.gpu:
        return (f"this llama.cpp build is CPU-only, although {here.gpu} is here; "
                f"{GPU_BUILD_HINT} offload")
    return "no GPU memory to use"


def _kv_line(shape: ModelShape, s: Settings, fixed: Overrides) -> str:
    """Why the KV cache is of its type."""
    head = f"KV cache {s.kv_type} ({_gib(kv_bytes(shape, s.n_ctx, s.kv_type))})"
    if fixed.kv_type:
        return f"{head} as you asked"
    if s.kv_type == "f16":
        return (f"{head}: full precision fits" if s.flash_attn else
                f"{head}: a quantized cache needs flash attention, which is off")
    if s.kv_type == "q8_0" and fixed.kv_quantized_why:
        return f"{head} {fixed.kv_quantized_why}"
    if s.kv_type == "q8_0" and not s.n_gpu_layers:
        return (f"{head}: on the CPU, llama.cpp computes a batch over a quantized cache exactly "
                "as one token at a time, so a resumed job writes what an uninterrupted one "
                "writes (docs/reproducible.md)")
    wider = "f16" if s.n_gpu_layers and not fixed.kv_quantized_why else "q8_0"
    return (f"{head}: {wider} would need {_gib(kv_bytes(shape, s.n_ctx, wider))} and does not "
            "fit")


def _choices(shape: ModelShape, s: Settings, need: Need, fixed: Overrides, memory: Memory,
             ram: int, vram: int, no_gpu: str) -> list[str]:
    """One plain line per setting; ``no_gpu`` says why there is no VRAM to use."""
    given = "as you asked"
    lines = []
    if fixed.n_ctx:
        lines.append(f"context {s.n_ctx} tokens {given}")
    elif s.n_ctx >= need.full:
        how = "measured with its tokenizer" if need.measured else "assumed: no tokenizer yet"
        lines.append(f"context {s.n_ctx} tokens: the whole job ({need.full} tokens at "
                     f"{need.tokens_per_word:.2f} tokens/word, {how}, + {TOKENS_MARGIN:.0%}) fits")
    else:
        lines.append(f"context {s.n_ctx} tokens: less than the whole job ({need.full}); the "
                     "writer drops its oldest sections from the conversation when full")
    lines.append(_kv_line(shape, s, fixed))
    if fixed.flash_attn is not None:
        lines.append(f"flash attention {'on' if s.flash_attn else 'off'} {given}")
    else:
        lines.append("flash attention on: without it the attention scores take context x batch "
                     "x heads x 6 bytes")
    blocks = min(s.gpu_blocks, shape.n_layers)
    placed = (f" (the output layer and the last {blocks} of {shape.n_layers} blocks)"
              if s.n_gpu_layers else "")
    if fixed.n_gpu_layers is not None:
        lines.append(f"GPU layers {s.n_gpu_layers}{placed} {given}")
    elif vram <= 0:
        lines.append(f"GPU layers 0: {no_gpu}")
    else:
        lines.append(f"GPU layers {s.n_gpu_layers}{placed}: as many as fit {_gib(vram)} of VRAM")
    if fixed.n_batch:
        lines.append(f"batch {s.n_batch} {given}")
    elif s.n_batch == DEFAULT_BATCH:
        lines.append(f"batch {s.n_batch}: llama.cpp's default, fast prompt evaluation")
    else:
        lines.append(f"batch {s.n_batch}: smaller batches need less compute memory")
    lines.append(f"threads {s.threads}: " + (f"${THREADS_ENV}" if threads_from_env() else
                                            "one per physical core"))
    lines.append(f"memory: {_gib(memory.ram_bytes)} RAM of {_gib(ram)} usable"
                 + (f", {_gib(memory.vram_bytes)} VRAM of {_gib(vram)}" if vram > 0 else ""))
    if memory.ram_load_bytes > memory.ram_steady_bytes:
        lines.append(f"RAM peaks while loading ({_gib(memory.ram_load_bytes)}: llama.cpp maps the "
                     f"whole file), then holds {_gib(memory.ram_steady_bytes)}")
    return lines


def suggest(shape: ModelShape, s: Settings, need: Need, ram: int, memory: Memory
             ) -> list[str]:
    """What would fit when nothing does (``memory``: what ``s`` needs)."""
    lines = [f"does not fit: needs {_gib(memory.ram_bytes)} RAM, "
             f"{_gib(ram)} usable" if need.minimum <= shape.context_length else
             f"does not fit: needs {need.minimum} tokens of context, trained on "
             f"{shape.context_length}"]
    if s.kv_type != "q4_0":
        lines.append("a quantized KV cache: {kv_type} q4_0 {flash_attn} on")
    if need.minimum < need.full:
        lines.append(f"a smaller context: {{n_ctx}} {need.minimum} (the writer keeps fewer "
                     "sections)")
    if not shape.exact:
        smaller = [q for q in ("Q4_K_M", "Q3_K_M", "Q2_K", "IQ2_M")
                   if NOMINAL_BPW[q] < NOMINAL_BPW.get(shape.quant, 99)]
        lines.append(f"a smaller quant: {{quant}} {' or '.join(smaller)}" if smaller else
                     "a smaller model")
    else:
        lines.append("a smaller quant of this model (lwlocal quantize) or a smaller model")
    if s.n_gpu_layers:
        lines.append(f"fewer GPU layers: {{n_gpu_layers}} {max(0, s.n_gpu_layers - 4)}")
    if need.mode == "direct":
        lines.append("{mode} agentwrite instead of direct (it needs only a window of the "
                     "text)")
    return lines

