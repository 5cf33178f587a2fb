"""Decode speed of `lwlocal write` against raw llama-cpp-python, and the KV reuse of AgentWrite.

Runs, in one process on the default model:
1. an AgentWrite job of N sections through lwlocal (planning included);
2. raw llama-cpp-python (`Llama.generate`, the loop its own completion API uses) producing the
   same number of tokens with the same context settings (those the planner chose for the job:
   context, KV type, flash attention, batch, threads) and sampling, over the same span
   of context positions (its prompt is the job's document, cut so that it ends where the job's
   context ended): decode speed falls as the context grows, so both must cover the same span.
Prints decode tokens/s of both, their ratio (goal >= 0.95) and the job's prompt tokens
evaluated / final context tokens (goal <= 1.15).

    .venv/bin/python benchmarks/write_throughput.py [--sections 8] [--words 1600] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import llama_cpp

from lwlocal.memory.context_settings import Settings
from lwlocal.models.catalogue import resolve
from lwlocal.runtime.engine import Sampling
from lwlocal.runtime.kv_cache import ggml_type
from lwlocal.util.cpu import physical_cores
from lwlocal.write.jobs import Session
from lwlocal.write.settings import JobSettings

PROMPT = "Write a detailed history of the bicycle, from the first draisines to modern e-bikes."


def lwlocal_job(sections: int, words: int, n_ctx: int, seed: int) -> tuple[dict, str, Settings]:
    """Run an AgentWrite job; its result, its document and the settings the planner chose."""
    settings = JobSettings(prompt=PROMPT, words=words, sections=sections, n_ctx=n_ctx,
                           sampling=Sampling(seed=seed))
    session = Session(settings)
    with tempfile.TemporaryDirectory() as root:
        result = session.run(session.new_job(Path(root)))
        document = Path(result.document_path).read_text()
        return result.as_dict(), document, session.memory_plan.settings


def raw_decode(n_tokens: int, end_position: int, document: str, chosen: Settings,
               seed: int) -> float:
    """Decode tokens/s of llama-cpp-python generating ``n_tokens`` tokens (end-of-turn ignored)
    so that the last lands at ``end_position``, timed as lwlocal's engine times it: from the
    first token to the last."""
    model = resolve(None)
    kv = ggml_type(chosen.kv_type)
    llm = llama_cpp.Llama(str(model.path), n_ctx=chosen.n_ctx, n_batch=chosen.n_batch,
                          n_ubatch=chosen.n_batch, n_threads=chosen.threads,
                          flash_attn=chosen.flash_attn, type_k=kv, type_v=kv, seed=seed,
                          verbose=False)
    s = Sampling(seed=seed)
    text = model.format.first_turn(f"{PROMPT}\n\n{document}")
    prompt = llm.tokenize(text.encode(), add_bos=True, special=True)
    prompt = prompt[: max(1, end_position - n_tokens)]
    produced = 0
    first = time.perf_counter()
    for _ in llm.generate(prompt, top_k=s.top_k, top_p=s.top_p, min_p=s.min_p,
                          temp=s.temperature, repeat_penalty=s.repeat_penalty):
        produced += 1
        if produced == 1:
            first = time.perf_counter()
        if produced >= n_tokens:
            break
    elapsed = time.perf_counter() - first
    llm.close()
    return produced / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", type=int, default=8)
    parser.add_argument("--words", type=int, default=1600)
    parser.add_argument("--ctx", type=int, default=8192)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rounds = []
    for r in range(args.rounds):
        job, document, chosen = lwlocal_job(args.sections, args.words, args.ctx, seed=r)
        raw = raw_decode(job["generated_tokens"], job["context_tokens"], document, chosen,
                         seed=r)
        rounds.append({
            "lwlocal_decode_tokens_per_s": job["decode_tokens_per_s"],
            "raw_decode_tokens_per_s": round(raw, 2),
            "ratio": round(job["decode_tokens_per_s"] / raw, 3),
            "generated_tokens": job["generated_tokens"],
            "sections": len(job["sections"]),
            "prompt_tokens_evaluated": job["prompt_tokens_evaluated"],
            "context_tokens": job["context_tokens"],
            "prompt_to_context": job["prompt_to_context"],
        })
        print(json.dumps(rounds[-1]), flush=True)
    summary = {
        "median_ratio": statistics.median(r["ratio"] for r in rounds),
        "median_prompt_to_context": statistics.median(r["prompt_to_context"] for r in rounds),
        "cores": physical_cores(),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
