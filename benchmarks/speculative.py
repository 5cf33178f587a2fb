"""Speculation (lookup, draft model) against no speculation and raw llama-cpp-python, on the
default model.

For each of a few AgentWrite-like requests (the writer's own prompt: instruction, outline, "now
write section 1 of N", documents of 1,000-3,000 words), in one process and alternating rounds:
1. lwlocal's engine, ``speculate="off"``;
2. lwlocal's engine, ``speculate="lookup"``;
3. lwlocal's engine, ``speculate="draft"`` with ``--draft`` (default: the default model
   quantized again to Q4_0, the only model with its tokenizer offline);
4. raw llama-cpp-python (``Llama.generate``, the loop its completion API uses) on the same file,
   prompt and settings;
5. the same on the draft model alone (what a guess costs against a token of the model);
each greedy (with the repetition penalty), flash attention and a q8_0 KV cache (what
speculation needs, see docs/speculation.md), the same number of tokens (end-of-turn masked for
the engine, ignored for raw), decode timed from the first token to the last, the prompt
evaluated afresh each time. Then the first request again for ``--hot-tokens`` tokens with
sampling at temperature 1.5 (top-k, top-p and min-p off), where guesses are seldom kept: the
cost of speculating when it does not pay (the same seed, so each mode writes the same tokens).
Then the cost of evaluating a batch of k tokens with logits for each (k = 1, 2, 4, 8: a token
and k-1 guesses) against one token, after 900 tokens of context, on ``--verify-model``
(default: the default model): what decides whether verifying guesses pays.
Writes benchmarks/results/speculative.json (``--out``).

    .venv/bin/python benchmarks/speculative.py [--rounds 2] [--tokens 256] [--hot-tokens 1024]
        [--draft GGUF]
    .venv/bin/python benchmarks/speculative.py --verify-only --verify-model 9B.gguf --out F
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import llama_cpp

from lwlocal.memory.planner import KV_BATCH_INVARIANT
from lwlocal.models.catalogue import resolve
from lwlocal.quant.quantize import quantize
from lwlocal.runtime.engine import Engine, Sampling
from lwlocal.runtime.kv_cache import ggml_type
from lwlocal.util.cpu import physical_cores
from lwlocal.write.lookup_gain import SAMPLE, section_request
from lwlocal.write.outline import Outline, Section

N_CTX = 4096
GREEDY = Sampling(temperature=0.0)
HOT = Sampling(temperature=1.5, top_p=1.0, top_k=0, min_p=0.0, seed=7)  # guesses seldom kept
ENGINE_MODES = ("off", "lookup", "draft")
RAW_MODES = ("raw", "draft-raw")  # raw llama-cpp-python on the model, and on the draft alone
VERIFY_CONTEXT = 900  # tokens before the verified batch (whatever the model's tokenizer)
JOBS = {
    "lisbon": Outline("Write a 2,000-word travel guide to Lisbon.", 2000, [
        Section("Arriving in Lisbon", "the airport, the metro and the trams into the city", 400),
        Section("The old quarters", "Alfama, Mouraria and the castle of Sao Jorge", 400),
        Section("Belem", "the monastery, the tower and the custard tarts of Belem", 400),
        Section("Food and wine", "fish, custard tarts, vinho verde and where to eat", 400),
        Section("Day trips", "Sintra, Cascais and the beaches of the Lisbon coast", 400),
    ]),
    "bicycle": SAMPLE,  # what --speculate auto measures lookup on
    "garden": Outline("Write a 1,000-word guide to keeping a vegetable garden in its first year.",
                      1000, [
        Section("Choosing the plot", "sun, soil and water for a vegetable garden", 250),
        Section("Preparing the soil", "compost, digging and raised beds", 250),
        Section("What to plant", "easy vegetables for the first year", 250),
        Section("Care through the year", "watering, weeding and harvesting", 250),
    ]),
}


def engine_run(engine: Engine, mode: str, context: list[int], tokens: int,
               sampling: Sampling = GREEDY) -> dict:
    engine.speculate = mode
    engine._llm.n_tokens = 0  # the prompt evaluated afresh, as for raw
    before = dict(vars(engine.stats))
    result = engine.generate(context, sampling, max_tokens=tokens, may_end=lambda: False)
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


def summarize(runs: list[dict], jobs: list[str], modes: tuple[str, ...]) -> dict[str, dict]:
    """Per job: median tokens/s of each mode, ratios to raw and to off, guesses kept, and
    whether every engine mode wrote the same text."""
    summary: dict[str, dict] = {}
    for name in jobs:
        mine = [x for x in runs if x["job"] == name]
        rate = {m: statistics.median(x["tokens_per_s"] for x in mine if x["mode"] == m)
                for m in modes}
        entry: dict = {"tokens_per_s": {m: round(v, 2) for m, v in rate.items()}}
        for mode in modes:
            if mode in ("off", *RAW_MODES):
                continue
            guessed = [x for x in mine if x["mode"] == mode]
            drafted = sum(x["drafted"] for x in guessed)
            accepted = sum(x["accepted"] for x in guessed)
            entry[mode] = {"vs_off": round(rate[mode] / rate["off"], 3),
                           "drafted": drafted, "accepted": accepted,
                           "acceptance_rate": round(accepted / drafted, 3) if drafted else 0.0}
            if "raw" in rate:
                entry[mode]["vs_raw"] = round(rate[mode] / rate["raw"], 3)
        if "raw" in rate:
            entry["off_vs_raw"] = round(rate["off"] / rate["raw"], 3)
            entry["draft_cost_vs_raw"] = round(rate["raw"] / rate["draft-raw"], 3)
        entry["same_text"] = len({x["text"] for x in mine if x["mode"] in ENGINE_MODES}) == 1
        summary[name] = entry
        print(name, json.dumps(entry), flush=True)
    return summary


def default_draft(folder: Path) -> Path:
    """The default model quantized again to Q4_0 (faster on llama.cpp's CPU backend)."""
    return quantize(resolve(None).path, folder / "draft-Q4_0.gguf", "Q4_0").path


def verify_on(path: Path, repeats: int) -> dict:
    """The verify cost of k tokens against one on ``path``, after ``VERIFY_CONTEXT`` tokens."""
    engine = Engine(path, n_ctx=2048, n_threads=physical_cores(), flash_attn=True,
                    kv_type=KV_BATCH_INVARIANT[0])
    prompt = engine.tokenize(section_request(JOBS["bicycle"]), start=True)
    context = (prompt * (VERIFY_CONTEXT // len(prompt) + 1))[:VERIFY_CONTEXT]
    cost = engine.time_batches(context, (1, 2, 4, 8), repeats)  # a token and k-1 guesses
    relative = {k: round(v / cost[1], 3) for k, v in cost.items()}
    print(f"{path.name}: batch of k / one token:", relative, flush=True)
    return {"verify_model": path.name, "verify_seconds": {k: round(v, 5) for k, v in cost.items()},
            "verify_vs_one": relative, "verify_context_tokens": len(context)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--hot-tokens", type=int, default=1024,
                        help="tokens of the case where guesses are seldom kept")
    parser.add_argument("--repeats", type=int, default=15, help="of each batch size")
    parser.add_argument("--draft", type=Path, help="draft model GGUF (default: see above)")
    parser.add_argument("--verify-model", type=Path, help="GGUF to measure the verify cost on")
    parser.add_argument("--verify-only", action="store_true", help="only the verify cost")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "speculative.json")
    args = parser.parse_args()
    model = resolve(None)
    threads = physical_cores()
    command = shlex.join(["benchmarks/speculative.py", *sys.argv[1:]])
    result: dict = {"command": command, "model": str(model.path.name), "threads": threads}
    if args.verify_only:
        result |= verify_on(args.verify_model or model.path, args.repeats)
        result["load_average"] = [round(x, 2) for x in os.getloadavg()]
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}")
        return
    with tempfile.TemporaryDirectory() as scratch:
        draft = args.draft or default_draft(Path(scratch))
        engine = Engine(model.path, n_ctx=N_CTX, n_threads=threads, flash_attn=True,
                        kv_type=KV_BATCH_INVARIANT[0], speculate="draft", draft_model=draft)
        kv = ggml_type(KV_BATCH_INVARIANT[0])
        raws = {mode: llama_cpp.Llama(str(path), n_ctx=N_CTX, n_batch=512, n_ubatch=512,
                                      n_threads=threads, flash_attn=True, type_k=kv,
                                      type_v=kv, verbose=False)
                for mode, path in zip(RAW_MODES, (model.path, draft), strict=True)}
        contexts = {name: engine.tokenize(model.format.first_turn(section_request(o)),
                                          start=True)
                    for name, o in JOBS.items()}
        runs: list[dict] = []
        hot: list[dict] = []
        for r in range(args.rounds):
            modes = ENGINE_MODES + RAW_MODES
            order = modes if r % 2 == 0 else modes[::-1]
            for name, context in contexts.items():
                for mode in order:
                    run = (raw_run(raws[mode], context, args.tokens) if mode in raws else
                           engine_run(engine, mode, context, args.tokens))
                    run.update(round=r + 1, job=name, mode=mode, prompt_tokens=len(context))
                    runs.append(run)
                    print(json.dumps({k: v for k, v in run.items() if k != "text"}), flush=True)
            for mode in (m for m in order if m in ENGINE_MODES):
                run = engine_run(engine, mode, contexts["lisbon"], args.hot_tokens, HOT)
                run.update(round=r + 1, job="lisbon-hot", mode=mode)
                hot.append(run)
                print(json.dumps({k: v for k, v in run.items() if k != "text"}), flush=True)
        summary = summarize(runs, list(contexts), ENGINE_MODES + RAW_MODES)
        summary |= summarize(hot, ["lisbon-hot"], ENGINE_MODES)
        result |= {
            "draft": draft.name if args.draft else "default model quantized to Q4_0",
            "n_ctx": N_CTX, "kv_type": KV_BATCH_INVARIANT[0], "flash_attn": True,
            "tokens": args.tokens, "hot_tokens": args.hot_tokens, "hot_sampling": vars(HOT),
            "runs": [{k: v for k, v in x.items() if k != "text"} for x in runs + hot],
            "summary": summary,
        }
        del engine
    result |= verify_on(args.verify_model or model.path, args.repeats)
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
