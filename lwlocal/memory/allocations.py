"""What a llama.cpp process with given settings takes in memory, term by term.

The RAM model is what the process's peak RSS will be: runtime overhead + weights + KV cache +
the compute memory that evaluating a batch touches, or, with layers on a GPU, the whole file
mapped while it loads if that is more. Its constants were measured on the default model (see
docs/memory-plan.md, `benchmarks/planner_accuracy.py`); its terms scale with the architecture.
The VRAM side is llama.cpp's buffers (weights, KV cache, compute) placed as llama.cpp places
layers, plus the GPU runtime and, without flash attention, CUDA's memory pool
(`benchmarks/gpu_memory.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from lwlocal.memory.context_settings import Settings
from lwlocal.memory.model_shape import ModelShape
from lwlocal.runtime.kv_cache import DRAFT_KV_TYPE, bytes_per_element

MiB = 2**20
GiB = 2**30

# Python, llama-cpp-python, ggml and the vocabulary tables, before any model memory.
RUNTIME_OVERHEAD = 63 * MiB
# Activation bytes each token of a micro-batch touches, per float of (n_embd + n_ff).
ACTIVATION_FACTOR = {True: 4.12 * 4, False: 1.94 * 4}  # keyed by flash attention
# Host memory a process with layers on a GPU holds on top of the CPU-side terms (CUDA runtime and
# cuBLAS libraries, pinned buffers), measured on an H200 with CUDA 13 (issue 14): while loading,
# the file's whole mapping plus about 350 MiB (the runtime overhead included); once loaded,
# steady RSS 379-829 MiB above the CPU-side terms; the larger of each is used.
GPU_HOST_LOAD = 350 * MiB - RUNTIME_OVERHEAD
GPU_HOST_STEADY = 830 * MiB
# GPU memory of the runtime itself when not measured on this machine (`lwlocal hw --measure`):
# 518 MiB once CUDA is initialised plus about 80 MiB after the first batch (H200, CUDA 13).
GPU_RUNTIME_DEFAULT = 598 * MiB


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
