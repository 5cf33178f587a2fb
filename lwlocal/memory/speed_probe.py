"""Measuring :class:`~lwlocal.memory.speed.Speed` on this machine and build (about 30 s on 2
cores), kept in the lwlocal home per machine, build and thread count.

Two models tell the constants apart: a wide one written here (two blocks of an 8B Llama's
width, Q4_K, zero weights, a byte vocabulary: its time is mostly reading weights, and in a
batch multiplying them) gives the weight bandwidth and the compute throughput; the default
model (30 narrow blocks: mostly fixed costs) the fixed cost of a block, and its decode and
prefill at two depths, with each KV type, attention's cost.
"""

from __future__ import annotations

import platform
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import gguf
import numpy as np

from lwlocal.memory.model_shape import ModelShape, shape_from_gguf
from lwlocal.memory.speed import Speed, block_params, weights_read
from lwlocal.util.errors import LwlocalError
from lwlocal.util.measurements import keep_entry, kept_entries
from lwlocal.util.paths import home

KV_TYPES = ("f16", "q8_0", "q4_0")
NEAR, FAR = 256, 1536  # depths the default model is measured at
DECODED = 32  # tokens generated at each depth
# each timing is taken this many times and the median kept: one run of 32 tokens varied by up to
# 40% on this project's shared 2 cores (the weights' bandwidth 26 to 42 GB/s in four runs), and
# so did the time plan built on it
REPEATS = 3
WIDE = {"n_embd": 4096, "n_ff": 14336, "heads": 32, "kv_heads": 8, "blocks": 2}
WIDE_BATCH = 256


def speed_file() -> Path:
    return home() / "speed.json"


def speed_key(threads: int) -> str:
    """What a measurement holds for: this CPU, the llama.cpp build and the thread count, that
    of prompt evaluation too (a measurement from before it was made the same is not reused)."""
    from lwlocal.runtime.llama_build import llama_build

    build = llama_build()
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu} | llama-cpp-python {build.version} | {'+'.join(build.backends)} | "
            f"{threads} threads, prompts too")


def kept_speed(threads: int) -> Speed | None:
    """The speed measured here for ``threads`` with this build, or None."""
    entry = kept_entries(speed_file()).get(speed_key(threads))
    if not isinstance(entry, dict) or not isinstance(entry.get("attention"), dict):
        return None
    try:
        attention = {str(k): (float(v[0]), float(v[1])) for k, v in entry["attention"].items()}
        return Speed(**{**entry, "attention": attention})
    except (KeyError, TypeError, ValueError, IndexError):
        return None


def measure_speed(threads: int, model: Path) -> Speed:
    """Measure this machine's constants with ``threads`` (``model``: the default model) and
    keep them."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lwlocal-speed-") as folder:
        wide = write_wide_model(Path(folder) / "wide.gguf")
        wide_decode, wide_prefill = _near_costs(wide, threads)
        wide_shape = shape_from_gguf(wide)
    narrow = _depth_costs(model, threads)
    speed = _solve(wide_shape, shape_from_gguf(model), wide_decode, wide_prefill, narrow,
                   threads)
    speed = Speed(**{**asdict(speed), "seconds": round(time.perf_counter() - started, 1)})
    keep_entry(speed_file(), speed.key, speed.as_dict())
    return speed


def write_wide_model(path: Path) -> Path:
    """A loadable GGUF of two 8B-wide Llama blocks: Q4_K zeros, a 256-token byte vocabulary."""
    from lwlocal.families.byte_bpe import byte_to_unicode

    Q = gguf.GGMLQuantizationType
    n_embd, n_ff = WIDE["n_embd"], WIDE["n_ff"]
    head_dim = n_embd // WIDE["heads"]
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_context_length(4096)
    writer.add_embedding_length(n_embd)
    writer.add_feed_forward_length(n_ff)
    writer.add_block_count(WIDE["blocks"])
    writer.add_head_count(WIDE["heads"])
    writer.add_head_count_kv(WIDE["kv_heads"])
    writer.add_rope_dimension_count(head_dim)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    pieces = list(byte_to_unicode().values())
    writer.add_token_list(pieces)
    writer.add_token_types([1] * len(pieces))
    writer.add_token_merges([f"{pieces[65]} {pieces[66]}"])  # one: an array of strings
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(len(pieces) - 1)

    def matrix(name: str, rows: int, cols: int) -> None:
        block_elements, block_bytes = gguf.GGML_QUANT_SIZES[Q.Q4_K]
        row = cols // block_elements * block_bytes
        writer.add_tensor(name, np.zeros((rows, row), np.uint8), raw_dtype=Q.Q4_K)

    def norm(name: str) -> None:
        writer.add_tensor(name, np.ones(n_embd, np.float32))

    kv = WIDE["kv_heads"] * head_dim
    matrix("token_embd.weight", len(pieces), n_embd)
    for b in range(WIDE["blocks"]):
        norm(f"blk.{b}.attn_norm.weight")
        norm(f"blk.{b}.ffn_norm.weight")
        for name, rows, cols in (("attn_q", n_embd, n_embd), ("attn_k", kv, n_embd),
                                 ("attn_v", kv, n_embd), ("attn_output", n_embd, n_embd),
                                 ("ffn_gate", n_ff, n_embd), ("ffn_up", n_ff, n_embd),
                                 ("ffn_down", n_embd, n_ff)):
            matrix(f"blk.{b}.{name}.weight", rows, cols)
    norm("output_norm.weight")
    matrix("output.weight", len(pieces), n_embd)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _engine(path: Path, threads: int, n_ctx: int, n_batch: int, kv_type: str):
    from lwlocal.runtime.engine import Engine

    return Engine(path, n_ctx=n_ctx, n_batch=n_batch, n_threads=threads, flash_attn=True,
                  kv_type=kv_type)


def _run(engine, context: Sequence[int]) -> tuple[float, float]:
    """Seconds per prompt token evaluated and per token generated by one request."""
    from lwlocal.runtime.engine import Sampling

    before = (engine.stats.prefill_seconds, engine.stats.prompt_tokens_evaluated,
              engine.stats.decode_seconds, engine.stats.generated_tokens)
    engine.generate(list(context), Sampling(seed=1), max_tokens=DECODED, may_end=lambda: False)
    s = engine.stats
    prefill = (s.prefill_seconds - before[0]) / max(1, s.prompt_tokens_evaluated - before[1])
    decode = (s.decode_seconds - before[2]) / max(1, s.generated_tokens - before[3])
    return prefill, decode


def _near_costs(wide: Path, threads: int) -> tuple[float, float]:
    """The wide model's seconds per generated token and per prompt token near the start (the
    medians of ``REPEATS`` requests, each a batch of its own)."""
    engine = _engine(wide, threads, 2 * WIDE_BATCH, WIDE_BATCH, "f16")
    rng = np.random.default_rng(0)
    _run(engine, [1] * 8)  # first touches of the weights
    runs = [_run(engine, [int(t) for t in rng.integers(2, 250, WIDE_BATCH)])
            for _ in range(REPEATS)]  # no token 1 first: nothing of the last one is reused
    return statistics.median(d for _, d in runs), statistics.median(p for p, _ in runs)


def _decoded(engine, context: Sequence[int]) -> tuple[float, float]:
    """Seconds per prompt token of ``context`` and per token generated after it (the median of
    ``REPEATS``: the later requests find the context in the KV cache and only decode)."""
    prefill, decode = _run(engine, context)
    return prefill, statistics.median([decode, *(_run(engine, context)[1]
                                                 for _ in range(REPEATS - 1))])


def _depth_costs(model: Path, threads: int) -> dict[str, tuple[float, float, float, float]]:
    """Per KV type, the default model's seconds per generated token at NEAR and FAR, and per
    prompt token over the batches to NEAR and from NEAR to FAR."""
    from lwlocal.quant.calibration import HELDOUT, shipped

    costs = {}
    for kv_type in KV_TYPES:
        engine = _engine(model, threads, FAR + 2 * DECODED + 8, 512, kv_type)
        tokens = engine.tokenize(shipped(HELDOUT), start=True)
        if len(tokens) < FAR:
            raise LwlocalError("the held-out text is too short to measure speed with")
        near_prefill, near_decode = _decoded(engine, tokens[:NEAR])
        far_prefill, far_decode = _decoded(engine, tokens[:FAR])
        costs[kv_type] = near_decode, far_decode, near_prefill, far_prefill
    return costs


def _solve(wide: ModelShape, narrow: ModelShape, wide_decode: float, wide_prefill: float,
           depth_costs: dict[str, tuple[float, float, float, float]], threads: int) -> Speed:
    """The constants from the measurements (see the module's docstring)."""
    decode_slope = {k: max(0.0, (c[1] - c[0]) / (FAR - NEAR)) for k, c in depth_costs.items()}
    # prefill per token: base + slope x mean depth; over [0, NEAR) the mean is NEAR/2, over
    # [NEAR, FAR) it is (NEAR + FAR)/2
    prefill_slope = {k: max(0.0, (c[3] - c[2]) / ((NEAR + FAR) / 2 - NEAR / 2))
                     for k, c in depth_costs.items()}
    # at no depth, the KV type makes no difference: each type's line gives it, the median kept
    narrow_decode0 = statistics.median(c[0] - decode_slope[k] * NEAR
                                       for k, c in depth_costs.items())
    narrow_prefill0 = statistics.median(c[2] - prefill_slope[k] * NEAR / 2
                                        for k, c in depth_costs.items())
    # decode: the wide model's time is weights read (its two blocks' fixed cost is a few per
    # cent of it), the default model's the rest fixed per block; prefill likewise with FLOPs
    # (each less the weights read once per batch)
    w_wide, w_narrow = weights_read(wide), weights_read(narrow)
    bandwidth = w_wide / wide_decode
    fixed = max(0.0, (narrow_decode0 - w_narrow / bandwidth) / narrow.n_layers)
    flops = 2 * block_params(wide) / (wide_prefill - w_wide / bandwidth / WIDE_BATCH)
    prefill_fixed = max(0.0, (narrow_prefill0 - w_narrow / bandwidth / NEAR
                              - 2 * block_params(narrow) / flops) / narrow.n_layers)
    unit = narrow.n_layers * narrow.n_heads * narrow.head_dim
    attention = {k: (decode_slope[k] / unit, prefill_slope[k] / unit) for k in depth_costs}
    return Speed(speed_key(threads), bandwidth, fixed, flops, prefill_fixed, attention,
                 time.strftime("%Y-%m-%d"))

