"""Prompt-lookup speculation against no speculation and raw llama-cpp-python, on the default model.

For each of a few AgentWrite-like requests (the writer's own prompt: instruction, outline, "now
write section 1 of N", documents of 1,000-3,000 words), in one process and alternating rounds:
1. lwlocal's engine, ``speculate="off"``;
2. lwlocal's engine, ``speculate="lookup"``;
3. raw llama-cpp-python (``Llama.generate``, the loop its completion API uses) on the same file,
   prompt and settings;
each greedy (with the repetition penalty), flash attention and a q8_0 KV cache (what lookup
needs, see docs/speculation.md), the same number of tokens (end-of-turn masked for the
engine, ignored for raw), decode timed from the first token to the last, the prompt evaluated
afresh each time. Then the cost of evaluating a batch of k tokens with logits for each (k = 1,
2, 4, 8: a token and k-1 guesses) against one token, at about 1,000 tokens of context: what
decides whether verifying guesses pays. Writes benchmarks/results/speculative.json.

    .venv/bin/python benchmarks/speculative.py [--rounds 2] [--tokens 256]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import llama_cpp

from lwlocal.models.catalogue import resolve
from lwlocal.runtime.engine import Engine, Sampling
from lwlocal.runtime.kv_cache import ggml_type
from lwlocal.runtime.speculate import QUANTIZED_KV
from lwlocal.util.cpu import physical_cores
from lwlocal.write.outline import Outline, Section
from lwlocal.write.writer import SECTION_REQUEST, WRITE_INTRO

N_CTX = 4096
GREEDY = Sampling(temperature=0.0)
JOBS = {
    "lisbon": Outline("Write a 2,000-word travel guide to Lisbon.", 2000, [
        Section("Arriving in Lisbon", "the airport, the metro and the trams into the city", 400),
        Section("The old quarters", "Alfama, Mouraria and the castle of Sao Jorge", 400),
        Section("Belem", "the monastery, the tower and the custard tarts of Belem", 400),
        Section("Food and wine", "fish, custard tarts, vinho verde and where to eat", 400),
        Section("Day trips", "Sintra, Cascais and the beaches of the Lisbon coast", 400),
    ]),
    "bicycle": Outline("Write a 3,000-word history of the bicycle.", 3000, [
        Section("The draisine", "Karl Drais's running machine of 1817", 500),
        Section("The velocipede", "pedals on the front wheel in 1860s France", 500),
        Section("The high-wheeler", "the penny-farthing and its dangers", 500),
        Section("The safety bicycle", "chain drive and equal wheels in the 1880s", 500),
        Section("The bicycle in the 20th century", "racing, commuting and the Tour de France",
                500),
        Section("Modern e-bikes", "batteries, motors and the bicycle in cities today", 500),
    ]),
    "garden": Outline("Write a 1,000-word guide to keeping a vegetable garden in its first year.",
                      1000, [
        Section("Choosing the plot", "sun, soil and water for a vegetable garden", 250),
        Section("Preparing the soil", "compost, digging and raised beds", 250),
        Section("What to plant", "easy vegetables for the first year", 250),
        Section("Care through the year", "watering, weeding and harvesting", 250),
    ]),
}


def section_prompt(outline: Outline) -> str:
    """The writer's request for section 1, as lwlocal's writer words it."""
    s = outline.sections[0]
    request = SECTION_REQUEST.format(index=1, count=len(outline.sections), title=s.title,
                                     main_point=s.main_point, words=s.words)
    return (WRITE_INTRO.format(prompt=outline.prompt, outline=outline.as_text())
            + f"\n\n{request}")


def engine_run(engine: Engine, mode: str, context: list[int], tokens: int) -> dict:
    engine.speculate = mode
    engine._llm.n_tokens = 0  # the prompt evaluated afresh, as for raw
    before = dict(vars(engine.stats))
    result = engine.generate(context, GREEDY, max_tokens=tokens, may_end=lambda: False)
    delta = {k: v - before[k] for k, v in vars(engine.stats).items()}
    return {"tokens": len(result.tokens), "tokens_per_s": (delta["generated_tokens"] - 1)
            / delta["decode_seconds"], "drafted": delta["drafted"],
            "accepted": delta["accepted"], "text": result.text}


def raw_run(llm: llama_cpp.Llama, context: list[int], tokens: int) -> dict:
    llm.reset()
    produced, first = 0, time.perf_counter()
    for _ in llm.generate(context, top_k=1, temp=0.0, repeat_penalty=GREEDY.repeat_penalty):
        produced += 1
        if produced == 1:
            first = time.perf_counter()
        if produced >= tokens:
            break
    return {"tokens": produced, "tokens_per_s": (produced - 1) / (time.perf_counter() - first)}


def verify_cost(engine: Engine, context: list[int], repeats: int) -> dict[int, float]:
    """Median seconds to evaluate a batch of k tokens with logits for each, after ``context``
    (k = 1 is the engine's ordinary one-token step)."""
    engine._llm.n_tokens = 0
    engine._prefill(context, None, None)
    base = engine._llm.n_tokens
    batch = context[-8:]
    times: dict[int, list[float]] = {k: [] for k in (1, 2, 4, 8)}
    for _ in range(repeats):
        for k in times:  # alternating: each k once per repeat
            engine._llm.n_tokens = base
            started = time.perf_counter()
            engine._decode(batch[0], batch[1:k])
            times[k].append(time.perf_counter() - started)
    engine._llm.n_tokens = 0
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=15, help="of each batch size")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "speculative.json")
    args = parser.parse_args()
    model = resolve(None)
    threads = physical_cores()
    engine = Engine(model.path, n_ctx=N_CTX, n_threads=threads, flash_attn=True,
                    kv_type=QUANTIZED_KV)
    kv = ggml_type(QUANTIZED_KV)
    raw = llama_cpp.Llama(str(model.path), n_ctx=N_CTX, n_batch=512, n_ubatch=512,
                          n_threads=threads, flash_attn=True, type_k=kv, type_v=kv,
                          verbose=False)
    contexts = {name: engine.tokenize(model.format.first_turn(section_prompt(o)), start=True)
                for name, o in JOBS.items()}
    runs: list[dict] = []
    for r in range(args.rounds):
        order = ["off", "lookup", "raw"] if r % 2 == 0 else ["raw", "lookup", "off"]
        for name, context in contexts.items():
            for mode in order:
                run = (raw_run(raw, context, args.tokens) if mode == "raw" else
                       engine_run(engine, mode, context, args.tokens))
                run.update(round=r + 1, job=name, mode=mode, prompt_tokens=len(context))
                runs.append(run)
                print(json.dumps({k: v for k, v in run.items() if k != "text"}), flush=True)
    summary: dict[str, dict] = {}
    for name in contexts:
        rate = {m: statistics.median(x["tokens_per_s"] for x in runs
                                     if x["job"] == name and x["mode"] == m)
                for m in ("off", "lookup", "raw")}
        looked = [x for x in runs if x["job"] == name and x["mode"] == "lookup"]
        drafted = sum(x["drafted"] for x in looked)
        accepted = sum(x["accepted"] for x in looked)
        same = len({x["text"] for x in runs if x["job"] == name and x["mode"] != "raw"}) == 1
        summary[name] = {"tokens_per_s": {m: round(v, 2) for m, v in rate.items()},
                         "lookup_vs_raw": round(rate["lookup"] / rate["raw"], 3),
                         "off_vs_raw": round(rate["off"] / rate["raw"], 3),
                         "lookup_vs_off": round(rate["lookup"] / rate["off"], 3),
                         "drafted": drafted, "accepted": accepted,
                         "acceptance_rate": round(accepted / drafted, 3) if drafted else 0.0,
                         "same_text_off_and_lookup": same}
        print(name, json.dumps(summary[name]), flush=True)
    cost = verify_cost(engine, contexts["bicycle"] * 3, args.repeats)
    relative = {k: round(v / cost[1], 3) for k, v in cost.items()}
    print("batch of k / one token:", relative, flush=True)
    result = {
        "command": "benchmarks/speculative.py " + " ".join(
            f"--{k} {v}" for k, v in vars(args).items() if k != "out"),
        "model": str(model.path.name), "threads": threads, "n_ctx": N_CTX,
        "kv_type": QUANTIZED_KV, "flash_attn": True,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "tokens": args.tokens, "runs": [{k: v for k, v in x.items() if k != "text"}
                                        for x in runs],
        "summary": summary,
        "verify_seconds": {k: round(v, 5) for k, v in cost.items()},
        "verify_vs_one": relative,
        "verify_context_tokens": len(contexts["bicycle"]) * 3,
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
