"""What `--speculate auto` predicts for lookup on a model, against the clock.

1. The prediction: ``measure_gain`` (what auto measures once and keeps: lookup's batches over
   256 tokens of the writer's section request with its default sampling, and each batch size's
   cost against one token), and the choice it leads to.
2. The measurement: the same request written with lookup and without, ``--rounds``
   alternating rounds of 256 tokens with the writer's default sampling (seeded: the same
   tokens either way), the decode rate of each, medians.

    .venv/bin/python benchmarks/lookup_auto.py [--model GGUF] [--rounds 4] [--out FILE]

Writes ``benchmarks/results/lookup_auto.json`` (``--out``); the measurement is kept in a
temporary LWLOCAL_HOME, not yours.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

from lwlocal.memory.planner import KV_BATCH_INVARIANT
from lwlocal.models.catalogue import resolve
from lwlocal.runtime.engine import Engine, Sampling
from lwlocal.util.cpu import physical_cores
from lwlocal.write.lookup_gain import LOOKUP_TOKENS, SAMPLE, choose, measure_gain, section_request

RESULTS = Path(__file__).parent / "results" / "lookup_auto.json"


def decode_rates(model: Path, context: list[int], threads: int, rounds: int) -> dict[str, float]:
    """Median tokens/s of ``LOOKUP_TOKENS`` tokens after ``context``, with lookup and without."""
    engine = Engine(model, n_ctx=2048, n_threads=threads, flash_attn=True,
                    kv_type=KV_BATCH_INVARIANT[0])
    rates: dict[str, list[float]] = {"off": [], "lookup": []}
    for _ in range(rounds):
        for mode in rates:  # alternating
            engine.speculate = mode  # the prompt is found in the cache: decode alone is timed
            before = engine.stats.decode_seconds, engine.stats.generated_tokens
            engine.generate(context, Sampling(), max_tokens=LOOKUP_TOKENS, may_end=lambda: False)
            rates[mode].append((engine.stats.generated_tokens - before[1])
                               / (engine.stats.decode_seconds - before[0]))
    return {mode: statistics.median(r) for mode, r in rates.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="card or GGUF (default: the default model)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    model, threads = resolve(args.model), physical_cores()
    with tempfile.TemporaryDirectory() as home:
        os.environ["LWLOCAL_HOME"] = home
        gain = measure_gain(model.path, model.format, threads)
    context = Engine(model.path, n_ctx=2048, n_threads=threads).tokenize(
        model.format.first_turn(section_request(SAMPLE)), start=True)
    rates = decode_rates(model.path, context, threads, args.rounds)
    result = {"model": model.path.name, "threads": threads, "rounds": args.rounds,
              "predicted": gain.as_dict(), "chosen": choose(gain).mode,
              "tokens_per_s": {m: round(r, 1) for m, r in rates.items()},
              "measured_gain": round(rates["lookup"] / rates["off"], 3)}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("chosen", "tokens_per_s", "measured_gain")}
                     | {"predicted_gain": result["predicted"]["gain"]}))


if __name__ == "__main__":
    main()
