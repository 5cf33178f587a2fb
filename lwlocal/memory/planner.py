"""Memory model and settings choice: context, KV cache type, flash attention, GPU layers, batch.

The RAM model is what the process's peak RSS will be: runtime overhead + weights + KV cache +
the compute memory that evaluating a batch touches, or, with layers on a GPU, the whole file
mapped while it loads if that is more. Its constants were measured on the default model (see
docs/memory-plan.md, `benchmarks/planner_accuracy.py`); its terms scale with the architecture.
The VRAM side is llama.cpp's buffers (weights, KV cache, compute) placed as llama.cpp places
layers, plus the GPU runtime and, without flash attention, CUDA's memory pool
(`benchmarks/gpu_memory.py`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

from lwlocal.families.base import ModelCard
from lwlocal.memory.hardware import Machine
from lwlocal.models.gguf_file import gguf_metadata, read_gguf
from lwlocal.quant.types import NOMINAL_BPW, quant_type
from lwlocal.runtime.kv_cache import KV_CACHE_TYPES, bytes_per_element
from lwlocal.runtime.llama_build import GPU_BUILD_HINT
from lwlocal.runtime.speculate import DRAFT_KV_TYPE
from lwlocal.util.errors import LwlocalError, SettingError

MiB = 2**20
GiB = 2**30

# Python, llama-cpp-python, ggml and the vocabulary tables, before any model memory.
RUNTIME_OVERHEAD = 63 * MiB
# Activation bytes each token of a micro-batch touches, per float of (n_embd + n_ff).
ACTIVATION_FACTOR = {True: 4.12 * 4, False: 1.94 * 4}  # keyed by flash attention
DEFAULT_BATCH = 512
SMALL_BATCHES = (256, 128)
KV_PREFERENCE = ("f16", "q8_0", "q4_0")
CONTEXT_STEP = 256  # llama.cpp pads the KV cache to this many cells
MIN_CTX = 64  # the smallest context a job or a plan may fix
TOKENS_MARGIN = 0.15  # on top of the words -> tokens estimate
HEAD_TOKENS = 400  # instruction and request text at the head of an AgentWrite conversation
OUTLINE_TOKENS_PER_SECTION = 60
REQUEST_TOKENS_PER_SECTION = 50
RAM_HEADROOM = 0.9  # plan to use at most this share of available memory
# Host memory a process with layers on a GPU holds on top of the CPU-side terms (CUDA runtime and
# cuBLAS libraries, pinned buffers), measured on an H200 with CUDA 13 (issue 14): while loading,
# the file's whole mapping plus about 350 MiB (the runtime overhead included); once loaded,
# steady RSS 379-829 MiB above the CPU-side terms; the larger of each is used.
GPU_HOST_LOAD = 350 * MiB - RUNTIME_OVERHEAD
GPU_HOST_STEADY = 830 * MiB
# GPU memory of the runtime itself when not measured on this machine (`lwlocal hw --measure`):
# 518 MiB once CUDA is initialised plus about 80 MiB after the first batch (H200, CUDA 13).
GPU_RUNTIME_DEFAULT = 598 * MiB

DEFAULT_QUANT = "Q4_K_M"
REPACKED_TYPES = ("Q4_0", "Q4_K", "IQ4_NL")  # llama.cpp's 8x8 CPU layouts on AVX2


@dataclass(frozen=True)
class ModelShape:
    """What the memory model needs to know about a model and its weights."""

    name: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    n_embd: int
    n_ff: int
    n_vocab: int
    context_length: int
    layer_bytes: tuple[int, ...]  # weights of each block
    input_bytes: int  # token embeddings: llama.cpp keeps them on the CPU
    output_bytes: int  # output norm and head: offloaded when every layer is
    exact: bool  # sizes read from a GGUF (else estimated from a card)
    quant: str
    # weights of each block that llama.cpp's CPU backend repacks into a second copy (its mapped
    # original, read to make the copy, stays resident): Q4_0, Q4_K and IQ4_NL matrices with
    # rows a multiple of 8, on AVX2 (not estimated from a card)
    layer_repacked: tuple[int, ...] = ()

    @property
    def weight_bytes(self) -> int:
        return sum(self.layer_bytes) + self.input_bytes + self.output_bytes


def shape_from_card(card: ModelCard, quant: str = DEFAULT_QUANT) -> ModelShape:
    """Estimated shape of a card's model quantized to ``quant`` (before any download)."""
    quant = quant.upper()
    quant = quant_type(quant)[0]
    if quant not in NOMINAL_BPW:
        raise SettingError(f"{{quant}} {quant}: no size estimate for it; choose one of "
                           f"{', '.join(NOMINAL_BPW)}")
    bpw = NOMINAL_BPW[quant]
    embedding = card.vocab_size * card.hidden_size
    per_layer = (card.n_params - 2 * embedding) / card.n_layers
    to_bytes = lambda params: int(params * bpw / 8)  # noqa: E731
    return ModelShape(
        card.name, card.n_layers, card.n_heads, card.n_kv_heads, card.head_dim,
        card.hidden_size, card.ffn_size, card.vocab_size, card.context_length,
        (to_bytes(per_layer),) * card.n_layers, to_bytes(embedding), to_bytes(embedding),
        exact=False, quant=quant,
    )


def shape_from_gguf(path: Path, name: str | None = None) -> ModelShape:
    """Exact shape of a GGUF: metadata and per-tensor sizes, no weights loaded."""
    from gguf import Keys

    meta = gguf_metadata(path)
    arch = meta.get(Keys.General.ARCHITECTURE)
    reader = read_gguf(path)

    def value(template: str, default: int | None = None) -> int:
        key = template.format(arch=arch)
        return int(meta[key] if default is None else meta.get(key, default))

    try:
        n_layers = value(Keys.LLM.BLOCK_COUNT)
        n_embd = value(Keys.LLM.EMBEDDING_LENGTH)
        n_heads = value(Keys.Attention.HEAD_COUNT)
        n_kv = value(Keys.Attention.HEAD_COUNT_KV, n_heads)
        head_dim = value(Keys.Attention.KEY_LENGTH, n_embd // n_heads)
        n_ff = value(Keys.LLM.FEED_FORWARD_LENGTH)
        context = value(Keys.LLM.CONTEXT_LENGTH)
    except (KeyError, TypeError, ValueError) as exc:
        raise LwlocalError(f"{path}: GGUF metadata lacks {exc} for architecture {arch}") from exc
    layers = [0] * n_layers
    repacked = [0] * n_layers
    input_bytes = output_bytes = 0
    n_vocab = 0
    for tensor in reader.tensors:
        size = int(tensor.n_bytes)
        if tensor.name.startswith("blk."):
            layers[int(tensor.name.split(".")[1])] += size
            if (tensor.tensor_type.name in REPACKED_TYPES and len(tensor.shape) == 2
                    and tensor.shape[1] % 8 == 0):
                repacked[int(tensor.name.split(".")[1])] += size
        elif tensor.name.startswith("token_embd"):
            input_bytes += size
            n_vocab = int(tensor.shape[-1])
        else:
            output_bytes += size
    types = {t.tensor_type.name for t in reader.tensors if t.name.startswith("blk.")}
    quant = "/".join(sorted(types - {"F32"})) or "F32"
    return ModelShape(name or path.name, n_layers, n_heads, n_kv, head_dim, n_embd, n_ff,
                      value(Keys.LLM.VOCAB_SIZE, n_vocab) or n_vocab, context,
                      tuple(layers), input_bytes, output_bytes, exact=True, quant=quant,
                      layer_repacked=tuple(repacked))


@dataclass(frozen=True)
class Settings:
    """llama.cpp context settings a plan chooses (or the user overrides)."""

    n_ctx: int
    kv_type: str = "f16"
    flash_attn: bool = True
    n_gpu_layers: int = 0
    n_batch: int = DEFAULT_BATCH
    threads: int = 1

    @property
    def gpu_blocks(self) -> int:
        """Repeating blocks llama.cpp puts on the GPU: ``n_gpu_layers`` counts the output layer
        first, then blocks from the last one down (``i_gpu_start = n_layer + 1 - ngl``)."""
        return max(0, self.n_gpu_layers - 1)

    def check(self) -> None:
        if self.kv_type not in KV_CACHE_TYPES:
            raise SettingError(f"{{kv_type}} {self.kv_type}: choose one of "
                               f"{', '.join(KV_CACHE_TYPES)}")
        if self.kv_type != "f16" and not self.flash_attn:
            raise SettingError(f"{{kv_type}} {self.kv_type} needs {{flash_attn}} on (llama.cpp "
                               "stores a quantized V cache only with flash attention)")
        check_overrides(Overrides(self.n_ctx, n_gpu_layers=self.n_gpu_layers,
                                  n_batch=self.n_batch))


@dataclass(frozen=True)
class Memory:
    """Predicted peak memory of the whole process, in bytes, with its parts.

    ``ram_bytes`` is the peak RSS the machine must survive: the larger of ``ram_steady_bytes``
    (running at a full context) and ``ram_load_bytes`` (the weights mapped while loading)."""

    ram_bytes: int
    vram_bytes: int
    parts: dict[str, int] = field(default_factory=dict)
    ram_steady_bytes: int = 0
    ram_load_bytes: int = 0


def kv_bytes(shape: ModelShape, n_ctx: int, kv_type: str) -> int:
    """KV cache bytes: context x layers x KV heads x head size x (K + V bytes)."""
    return int(n_ctx * shape.n_layers * shape.n_kv_heads * shape.head_dim * 2
               * bytes_per_element(kv_type))


def compute_bytes_touched(shape: ModelShape, s: Settings) -> int:
    """CPU memory that evaluating a full micro-batch touches at a full context.

    Without flash attention: the KQ scores (f32), their f16 copy in ggml's work buffer and the
    f32 mask, all context x batch; with it only an f16 mask. Plus activations per token.
    """
    per_ctx = 2 if s.flash_attn else shape.n_heads * 6 + 4
    activations = ACTIVATION_FACTOR[s.flash_attn] * (shape.n_embd + shape.n_ff)
    return int(s.n_batch * (s.n_ctx * per_ctx + activations))


def compute_bytes_allocated(shape: ModelShape, s: Settings) -> int:
    """The compute buffer llama.cpp reserves (as its log reports it): the larger of the output
    logits for a micro-batch and, without flash attention, the attention scores."""
    logits = shape.n_vocab + 2 * shape.n_embd
    attention = 0 if s.flash_attn else s.n_ctx * (shape.n_heads + 1) + 2 * shape.n_ff
    return s.n_batch * 4 * max(logits, attention)


def cuda_pool_bytes(shape: ModelShape, s: Settings, filled: int | None = None) -> int:
    """What CUDA's memory pool grows by without flash attention: the KQ scores' f16 copy for
    cuBLAS, ``filled`` cells (the whole context by default) x micro-batch x heads x 2 bytes."""
    if s.flash_attn:
        return 0
    return (s.n_ctx if filled is None else filled) * s.n_batch * shape.n_heads * 2


def predict(shape: ModelShape, s: Settings, gpu_runtime: int = 0,
            filled: int | None = None, cpu_repack: bool = False,
            draft: ModelShape | None = None) -> Memory:
    """Peak RAM and VRAM of a process running ``shape`` with settings ``s``.

    ``gpu_runtime``: what the GPU runtime itself holds on the device (CUDA context, cuBLAS);
    ``filled``: tokens in the KV cache when memory peaks (default: a full context);
    ``cpu_repack``: llama.cpp's CPU backend keeps repacked copies of the CPU layers' weights
    (``Machine.cpu_repack``); ``draft``: a draft model for speculation loaded beside it, with
    its own context of the same size (an f16 KV cache), all on the GPU when ``s`` offloads
    anything (as :class:`lwlocal.runtime.draft_model.DraftModel` loads it)."""
    blocks = min(s.gpu_blocks, shape.n_layers)
    on_gpu = s.n_gpu_layers > 0
    offloaded = sum(shape.layer_bytes[shape.n_layers - blocks:]) + (
        shape.output_bytes if on_gpu else 0)
    kv_layer = kv_bytes(shape, s.n_ctx, s.kv_type) // shape.n_layers
    cpu_share = 1 - blocks / shape.n_layers
    parts_ram = {
        "overhead": RUNTIME_OVERHEAD,
        "weights": shape.weight_bytes - offloaded,
        "kv_cache": kv_layer * (shape.n_layers - blocks),
        "compute": int(compute_bytes_touched(shape, s) * cpu_share),
    }
    if cpu_repack and shape.layer_repacked:
        parts_ram["repacked"] = sum(shape.layer_repacked[:shape.n_layers - blocks])
    parts_vram = {}
    if on_gpu:
        parts_ram["gpu_runtime"] = GPU_HOST_STEADY
        parts_vram = {
            "runtime": gpu_runtime,
            "weights": offloaded,
            "kv_cache": kv_layer * blocks,
            "compute": compute_bytes_allocated(shape, s),
            "cuda_pool": cuda_pool_bytes(shape, s, filled),
        }
    load = RUNTIME_OVERHEAD + shape.weight_bytes + (GPU_HOST_LOAD if on_gpu else 0)
    if draft is not None:  # its own parts; the process overhead and GPU runtime count once
        beside = predict(draft, replace(s, kv_type=DRAFT_KV_TYPE,
                                        n_gpu_layers=draft.n_layers + 1 if on_gpu else 0),
                         filled=filled, cpu_repack=cpu_repack)
        parts_ram["draft"] = beside.ram_steady_bytes - beside.parts["ram_overhead"] - (
            beside.parts.get("ram_gpu_runtime", 0))
        if on_gpu:
            parts_vram["draft"] = beside.vram_bytes
        load += draft.weight_bytes
    steady = sum(parts_ram.values())
    parts = {f"ram_{k}": v for k, v in parts_ram.items()}
    parts |= {f"vram_{k}": v for k, v in parts_vram.items()}
    return Memory(max(steady, load), sum(parts_vram.values()), parts, steady, load)


@dataclass(frozen=True)
class Need:
    """How much context a job needs: all of it, and the least it can run in."""

    full: int
    minimum: int
    tokens_per_word: float
    mode: str
    measured: bool  # tokens/word measured with the model's tokenizer (else assumed)
    prompt_tokens: int = 0  # of them, the user's prompt (estimated like the words)


def round_up(n: float, step: int = CONTEXT_STEP) -> int:
    return int(math.ceil(n / step) * step)


def context_needed(words: int, mode: str, tokens_per_word: float, n_sections: int,
                   measured: bool = True, prompt_words: int = 0) -> Need:
    """Tokens of context a job needs, with ``TOKENS_MARGIN`` on the words -> tokens estimates
    (of the output, and of the ``prompt_words`` of the user's prompt, which heads every request).

    Direct: prompt + the whole output. AgentWrite: instruction + outline + every section with its
    request (full), or instruction + outline + the two latest sections (the least the writer can
    work in: it drops older sections from the conversation when the context is full).
    """
    output = words * tokens_per_word * (1 + TOKENS_MARGIN)
    prompt = round(prompt_words * tokens_per_word * (1 + TOKENS_MARGIN))
    if mode == "direct":
        need = round_up(HEAD_TOKENS + prompt + output)
        return Need(need, need, tokens_per_word, mode, measured, prompt)
    head = HEAD_TOKENS + prompt + n_sections * OUTLINE_TOKENS_PER_SECTION
    largest_section = 2 * output / n_sections  # budgets may differ; allow twice the mean
    full = head + n_sections * REQUEST_TOKENS_PER_SECTION + output
    minimum = head + 2 * (REQUEST_TOKENS_PER_SECTION + largest_section)
    return Need(round_up(full), round_up(min(full, minimum)), tokens_per_word, mode, measured,
                prompt)


@dataclass
class Plan:
    """Chosen settings, predicted memory, one line of reasons per choice, and whether it fits.

    ``suggestions`` and ``warnings`` name settings as ``{n_ctx}``, as :class:`SettingError`
    does: front ends show them with ``lwlocal.util.errors.name_settings``."""

    model: str
    settings: Settings
    memory: Memory
    need: Need
    fits: bool
    reasons: list[str]
    suggestions: list[str]
    ram_budget: int
    vram_budget: int
    exact: bool
    gpu_runtime: int = 0  # the GPU runtime term used (0 without GPU layers)
    gpu_runtime_measured: bool = False
    warnings: list[str] = field(default_factory=list)
    draft_model: str | None = None  # the draft model counted in, speculating

    def as_dict(self) -> dict[str, object]:
        s = self.settings
        return {
            "model": self.model,
            "draft_model": self.draft_model,
            "ram_bytes": self.memory.ram_bytes,
            "ram_steady_bytes": self.memory.ram_steady_bytes,
            "ram_load_bytes": self.memory.ram_load_bytes,
            "vram_bytes": self.memory.vram_bytes,
            "vram_measured": False,
            "gpu_runtime_bytes": self.gpu_runtime,
            "gpu_runtime_measured": self.gpu_runtime_measured,
            "n_ctx": s.n_ctx,
            "kv_type": s.kv_type,
            "flash_attn": s.flash_attn,
            "n_gpu_layers": s.n_gpu_layers,
            "n_batch": s.n_batch,
            "n_ubatch": s.n_batch,
            "threads": s.threads,
            "fits": self.fits,
            "context_needed": self.need.full,
            "context_minimum": self.need.minimum,
            "tokens_per_word": round(self.need.tokens_per_word, 3),
            "tokens_margin": TOKENS_MARGIN,
            "ram_budget_bytes": self.ram_budget,
            "vram_budget_bytes": self.vram_budget,
            "sizes_exact": self.exact,
            "memory_parts": self.memory.parts,
            "reasons": self.reasons,
            "suggestions": self.suggestions,
            "warnings": self.warnings,
        }


@dataclass(frozen=True)
class Overrides:
    """Settings the user fixed; the planner chooses the rest. ``kv_type_why``: why the KV
    cache type is fixed when the user did not fix it (speculation needs a quantized one)."""

    n_ctx: int | None = None
    kv_type: str | None = None
    flash_attn: bool | None = None
    n_gpu_layers: int | None = None
    n_batch: int | None = None
    kv_type_why: str | None = None


def check_overrides(fixed: Overrides) -> None:
    """Refuse memory settings no context can be made with (0 is not "the plan's choice")."""
    for name, value, least in (("n_ctx", fixed.n_ctx, MIN_CTX), ("n_batch", fixed.n_batch, 1),
                               ("n_gpu_layers", fixed.n_gpu_layers, 0)):
        if value is not None and value < least:
            raise SettingError(f"{{{name}}} {value}: must be at least {least}")


def _gib(n: float) -> str:
    return f"{n / GiB:.2f} GiB"


def _fits(memory: Memory, ram: int, vram: int, unified: bool) -> bool:
    """Whether ``memory`` fits the budgets; on unified memory the GPU's share comes out of RAM
    too, except the offloaded weights, which stay in the file mapping RAM already counts."""
    shared = memory.vram_bytes - memory.parts.get("vram_weights", 0) if unified else 0
    return memory.ram_bytes + shared <= ram and memory.vram_bytes <= vram


def _offload(machine: Machine, fixed: Overrides, vram: int | None) -> tuple[Overrides, list[str]]:
    """The overrides a CPU-only llama.cpp build can honour, and a warning for an --ngl it cannot.

    A plan for another machine (``vram`` given) assumes that machine's build offloads."""
    if vram is not None or machine.offload or not fixed.n_gpu_layers:
        return fixed, []
    return replace(fixed, n_gpu_layers=0), [
        f"{{n_gpu_layers}} {fixed.n_gpu_layers} cannot take effect: this llama.cpp build is "
        "CPU-only "
        f"({GPU_BUILD_HINT}); planning for the CPU"]


def plan(shape: ModelShape, machine: Machine, need: Need, fixed: Overrides = Overrides(),
         ram: int | None = None, vram: int | None = None,
         draft: ModelShape | None = None) -> Plan:
    """Choose settings for ``need`` on ``machine`` (or within ``ram``/``vram`` bytes), with
    ``draft``'s memory counted in when a draft model speculates beside the model."""
    ram_budget = int((ram if ram is not None else machine.ram_available) * RAM_HEADROOM)
    vram_budget = int((vram if vram is not None else machine.vram_free) * RAM_HEADROOM)
    fixed, warnings = _offload(machine, fixed, vram)
    if vram is None and not machine.offload:
        vram_budget = 0
    measured_runtime = vram is None and machine.gpu_runtime is not None
    runtime = (machine.gpu_runtime if vram is None and machine.gpu_runtime is not None
               else GPU_RUNTIME_DEFAULT)
    repack = machine.cpu_repack
    reasons: list[str] = []
    trained = shape.context_length
    if need.minimum > trained:
        reasons.append(f"the job needs {need.minimum} tokens of context but {shape.name} was "
                       f"trained on {trained}")
    contexts = [fixed.n_ctx] if fixed.n_ctx else _contexts(need, trained)
    kv_types = [fixed.kv_type] if fixed.kv_type else list(KV_PREFERENCE)
    fa_options = [fixed.flash_attn] if fixed.flash_attn is not None else [True]
    batches = [fixed.n_batch] if fixed.n_batch else [DEFAULT_BATCH, *SMALL_BATCHES]
    threads = machine.cores
    on_gpu = vram_budget > 0 or fixed.n_gpu_layers

    def gpu_layers(base: Settings) -> int:
        if fixed.n_gpu_layers is not None:
            return fixed.n_gpu_layers
        if not on_gpu:
            return 0
        for n in range(shape.n_layers + 1, -1, -1):
            if predict(shape, replace(base, n_gpu_layers=n), runtime, cpu_repack=repack,
                       draft=draft).vram_bytes <= vram_budget:
                return n
        return 0

    candidates = [Settings(c, k, fa, 0, b, threads) for c in contexts for k in kv_types
                  for fa in fa_options for b in batches if k == "f16" or fa]
    if not candidates:
        candidates = [Settings(contexts[0], kv_types[0], fa_options[0], 0, batches[0], threads)]
    chosen = None
    for candidate in candidates:
        candidate = replace(candidate, n_gpu_layers=gpu_layers(candidate))
        memory = predict(shape, candidate, runtime, cpu_repack=repack, draft=draft)
        if _fits(memory, ram_budget, vram_budget, machine.unified):
            chosen = candidate
            break
    fits = chosen is not None and (bool(fixed.n_ctx) or need.minimum <= trained)
    settings = chosen or replace(candidates[-1], n_gpu_layers=gpu_layers(candidates[-1]))
    settings.check()
    memory = predict(shape, settings, runtime, cpu_repack=repack, draft=draft)
    no_gpu = (f"this llama.cpp build is CPU-only, although {machine.gpu} is here; "
              f"{GPU_BUILD_HINT} offload" if vram is None and not machine.offload and machine.gpu
              else "no GPU memory to use")
    reasons += _explain(shape, settings, need, fixed, memory, ram_budget, vram_budget, no_gpu)
    if settings.n_gpu_layers and machine.gpus > 1 and vram is None:
        reasons.append(f"{machine.gpus} GPUs found: the plan and the engine use the first one "
                       "alone (a split over several GPUs is not planned)")
    if draft is not None:
        beside = memory.parts["ram_draft"] + memory.parts.get("vram_draft", 0)
        reasons.append(f"the draft model {draft.name} speculates beside it: its weights, "
                       f"context and f16 KV cache take {_gib(beside)}")
    suggestions = [] if fits else _suggest(shape, settings, need, ram_budget, memory)
    offloaded = settings.n_gpu_layers > 0
    return Plan(shape.name, settings, memory, need, fits, reasons, suggestions, ram_budget,
                vram_budget, shape.exact, runtime if offloaded else 0,
                offloaded and measured_runtime, warnings, draft.name if draft else None)


def _contexts(need: Need, trained: int) -> list[int]:
    """Context sizes to try, largest first: the whole job, then halves down to the minimum."""
    sizes = [min(need.full, trained)]
    while (half := round_up(sizes[-1] // 2)) >= need.minimum and half < sizes[-1]:
        sizes.append(half)
    if need.minimum < sizes[-1] and need.minimum <= trained:
        sizes.append(need.minimum)
    return sizes


def _explain(shape: ModelShape, s: Settings, need: Need, fixed: Overrides, memory: Memory,
             ram: int, vram: int, no_gpu: str) -> list[str]:
    """One plain line per choice; ``no_gpu`` says why there is no VRAM to use."""
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
    kv = kv_bytes(shape, s.n_ctx, s.kv_type)
    if fixed.kv_type:
        lines.append(f"KV cache {s.kv_type} ({_gib(kv)}) {fixed.kv_type_why or given}")
    elif s.kv_type == "f16":
        lines.append(f"KV cache f16 ({_gib(kv)}): full precision fits")
    else:
        lines.append(f"KV cache {s.kv_type} ({_gib(kv)}): f16 would need "
                     f"{_gib(kv_bytes(shape, s.n_ctx, 'f16'))} and does not fit")
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
    lines.append(f"threads {s.threads}: one per physical core")
    lines.append(f"memory: {_gib(memory.ram_bytes)} RAM of {_gib(ram)} usable"
                 + (f", {_gib(memory.vram_bytes)} VRAM of {_gib(vram)}" if vram > 0 else ""))
    if memory.ram_load_bytes > memory.ram_steady_bytes:
        lines.append(f"RAM peaks while loading ({_gib(memory.ram_load_bytes)}: llama.cpp maps the "
                     f"whole file), then holds {_gib(memory.ram_steady_bytes)}")
    return lines


def _suggest(shape: ModelShape, s: Settings, need: Need, ram: int, memory: Memory
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

