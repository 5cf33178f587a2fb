"""What writing under a JSON grammar (an outline) costs against writing without one.

Three decoders write the outline request of a 5,000-word job, ``--tokens`` tokens at most,
with the writer's default sampling and seeds 0..``--rounds``-1, in alternating rounds on one
model and thread count:

1. lwlocal's engine under the outline's schema (the chain's pick checked alone, the grammar
   applied to every candidate only where it refuses it: ``lwlocal/runtime/sampler.py``);
2. llama-cpp-python's own ``create_completion`` under the same schema's grammar (the reference);
3. lwlocal's engine without a grammar.

Rates are generated tokens over the reply's time (llama-cpp-python's: its whole call, the
prompt's ~140 tokens included, so it is a little low), medians of the rounds.

    .venv/bin/python benchmarks/grammar_sampling.py [--model GGUF] [--rounds 3] [--tokens 400]

Writes ``benchmarks/results/grammar_sampling.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from llama_cpp import Llama, LlamaGrammar

from lwlocal.memory.planner import KV_BATCH_INVARIANT
from lwlocal.models.catalogue import resolve
from lwlocal.runtime.engine import Engine, Sampling
from lwlocal.runtime.kv_cache import ggml_type
from lwlocal.util.cpu import physical_cores
from lwlocal.write.outline import outline_prompt, outline_schema, section_range

PROMPT = ("Write a guide to the history, craft and science of bread baking, from ancient grains "
          "to modern sourdough.")
WORDS = 5000
N_CTX = 4096


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a card or GGUF (default: the default model)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=400)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results"
                        / "grammar_sampling.json")
    args = parser.parse_args()
    model, threads, kv = resolve(args.model), physical_cores(), KV_BATCH_INVARIANT[0]
    schema = outline_schema(section_range(WORDS))
    request = model.format.first_turn(outline_prompt(PROMPT, WORDS, section_range(WORDS)))
    engine = Engine(model.path, n_ctx=N_CTX, n_threads=threads, flash_attn=True, kv_type=kv)
    context = engine.tokenize(request, start=True)
    reference = Llama(str(model.path), n_ctx=N_CTX, n_threads=threads, flash_attn=True,
                      type_k=ggml_type(kv), type_v=ggml_type(kv), verbose=False)
    grammar = LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
    defaults = Sampling()

    def lwlocal(seed: int, with_schema: bool) -> float:
        stats = engine.stats
        tokens, seconds = stats.generated_tokens, stats.decode_seconds
        engine.generate(context, Sampling(seed=seed), max_tokens=args.tokens,
                        json_schema=schema if with_schema else None)
        return (stats.generated_tokens - tokens) / (stats.decode_seconds - seconds)

    def llama_cpp_python(seed: int) -> float:
        reference.reset()
        started = time.perf_counter()
        out = reference.create_completion(request, max_tokens=args.tokens, grammar=grammar,
                                          temperature=defaults.temperature, top_p=defaults.top_p,
                                          top_k=defaults.top_k, min_p=defaults.min_p,
                                          repeat_penalty=defaults.repeat_penalty, seed=seed)
        return out["usage"]["completion_tokens"] / (time.perf_counter() - started)

    rates: dict[str, list[float]] = {"lwlocal_grammar": [], "llama_cpp_python_grammar": [],
                                     "lwlocal_plain": []}
    for seed in range(args.rounds):
        rates["lwlocal_grammar"].append(lwlocal(seed, True))
        rates["llama_cpp_python_grammar"].append(llama_cpp_python(seed))
        rates["lwlocal_plain"].append(lwlocal(seed, False))
    medians = {name: round(statistics.median(r), 1) for name, r in rates.items()}
    result = {"model": model.path.name, "threads": threads, "kv_type": kv,
              "tokens": args.tokens, "rounds": args.rounds,
              "tokens_per_s": medians,
              "rounds_tokens_per_s": {k: [round(x, 1) for x in v] for k, v in rates.items()},
              "grammar_vs_plain": round(medians["lwlocal_grammar"] / medians["lwlocal_plain"], 3),
              "lwlocal_vs_llama_cpp_python": round(
                  medians["lwlocal_grammar"] / medians["llama_cpp_python_grammar"], 3)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
