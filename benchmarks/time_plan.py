"""The time plan against the clock, on this machine.

1. Jobs on the default model (``--words``, default 500, 2000 and 5000): ``lwlocal plan --words N
   --json``'s ``predicted_seconds`` against the ``seconds`` of ``lwlocal write PROMPT --words N
   --json`` (the run from the outline to the document; loading the model is in neither), with
   the plan's settings; the plan measures this machine's speed first (its seconds reported).
2. Models given with ``--model`` (the 9B-shaped zero-weight GGUF: its text would be noise, so
   not a job): the time model's seconds for a prefill from 0 to ``--depth`` tokens and
   ``--tokens`` decodes there, with the plan's settings at that context, against the engine's.

    .venv/bin/python benchmarks/time_plan.py [--words 500,2000,5000] [--model FILE.gguf]

Writes ``benchmarks/results/time_plan.json`` (``--out``). The jobs run in one fresh
LWLOCAL_HOME, in the order given, as a user's would: the first plan measures the machine's
speed and counts the tokenizer's tokens a word; the later ones, the model's pace in the runs
before (``time_tokens_per_word`` and ``time_tokens_per_word_from`` in each row).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lwlocal.memory.context_settings import Settings
from lwlocal.memory.model_shape import shape_from_gguf
from lwlocal.memory.speed import decode_seconds, prefill_seconds
from lwlocal.memory.speed_probe import kept_speed
from lwlocal.runtime.engine import Engine, Sampling
from lwlocal.util.cpu import default_threads

PROMPT = ("Write a guide to the history, craft and science of bread baking, from ancient grains "
          "to modern sourdough.")
HELDOUT = Path(__file__).parents[1] / "lwlocal" / "quant" / "data" / "heldout_longform.txt"


def lwlocal(home: Path, *args: str) -> dict[str, Any]:
    env = {**os.environ, "LWLOCAL_HOME": str(home)}
    proc = subprocess.run([sys.executable, "-m", "lwlocal", *args, "--json"], env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def job(home: Path, words: int) -> dict[str, Any]:
    """Plan, then write, a job of ``words``: predicted against measured."""
    started = time.perf_counter()
    planned = lwlocal(home, "plan", "--words", str(words))
    planning = time.perf_counter() - started
    written = lwlocal(home, "write", PROMPT, "--words", str(words))
    return {"words": words, "written_words": written["words"],
            "sections": len(written["sections"]), "n_ctx": planned["n_ctx"],
            "kv_type": planned["kv_type"], "plan_seconds": round(planning, 1),
            "predicted_seconds": planned["predicted_seconds"],
            "write_predicted_seconds": written["predicted_seconds"],
            "measured_seconds": written["seconds"],
            "ratio": round(planned["predicted_seconds"] / written["seconds"], 3),
            "generated_tokens": written["generated_tokens"],
            # the outline's, every try of it: what the sections did not generate
            "outline_tokens": written["generated_tokens"] - sum(
                s["generated_tokens"] for s in written["sections"]),
            "predicted_outline_tokens": sum(s["decode_tokens"] for s in planned["predicted_steps"]
                                            if s["name"] == "outline"),
            "prompt_tokens_evaluated": written["prompt_tokens_evaluated"],
            "predicted_prompt_tokens": sum(s["prefill_tokens"]
                                           for s in planned["predicted_steps"]),
            "time_tokens_per_word": planned["time_tokens_per_word"],
            "time_tokens_per_word_from": planned["time_tokens_per_word_from"],
            "decode_tokens_per_s": written["decode_tokens_per_s"],
            "predicted_decode_tokens_per_s": planned["decode_tokens_per_s"]}


def engine_row(model: Path, depth: int, tokens: int, threads: int) -> dict[str, Any]:
    """The time model against the engine: a prefill to ``depth``, ``tokens`` decodes there."""
    speed = kept_speed(threads)
    assert speed is not None, "run a plan first: it measures this machine's speed"
    settings = Settings(depth + tokens + 64, "q8_0", True, 0, 512, threads)
    shape = shape_from_gguf(model)
    engine = Engine(model, n_ctx=settings.n_ctx, n_batch=512, n_threads=threads,
                    flash_attn=True, kv_type="q8_0")
    filler = engine.tokenize(HELDOUT.read_text(), start=True)
    context = (filler * (depth // len(filler) + 1))[:depth]
    engine.generate(context, Sampling(seed=1), max_tokens=tokens, may_end=lambda: False)
    s = engine.stats
    predicted_prefill = prefill_seconds(shape, settings, speed, 0, depth)
    predicted_decode = sum(decode_seconds(shape, settings, speed, depth + i)
                           for i in range(tokens))
    return {"model": model.name, "depth": depth, "tokens": tokens,
            "prefill_seconds": round(s.prefill_seconds, 2),
            "predicted_prefill_seconds": round(predicted_prefill, 2),
            "decode_seconds": round(s.decode_seconds, 2),
            "predicted_decode_seconds": round(predicted_decode, 2),
            "ratio": round((predicted_prefill + predicted_decode)
                           / (s.prefill_seconds + s.decode_seconds), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", default="500,2000,5000")
    parser.add_argument("--model", type=Path, action="append", default=[])
    parser.add_argument("--depth", type=int, default=2048)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "time_plan.json")
    args = parser.parse_args()
    result: dict[str, Any] = {"threads": default_threads(), "jobs": [], "models": []}
    with tempfile.TemporaryDirectory(prefix="lwlocal-time-plan-") as folder:
        home = Path(folder)
        os.environ["LWLOCAL_HOME"] = str(home)
        for words in [int(w) for w in args.words.split(",") if w]:
            row = job(home, words)
            result["jobs"].append(row)
            print(json.dumps(row), flush=True)
        speed = kept_speed(default_threads())
        result["speed"] = speed.as_dict() if speed else None
        for model in args.model:
            row = engine_row(model, args.depth, args.tokens, default_threads())
            result["models"].append(row)
            print(json.dumps(row), flush=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
