"""Throughput of many writing jobs through servers at several concurrencies, with the same jobs
written by the local engine (no server) as the reference, in one run.

The servers: llama.cpp's own ``llama-server`` (built by ``make llama-server`` from the
llama.cpp the engine vendors) with as many slots (``--parallel``) as jobs written at once, each
batch worker keeping to its own slot (``id_slot``) so a job's prefix stays in that slot's KV
cache; and ``lwlocal serve`` (one slot). For each: jobs per hour, aggregate generated tokens/s,
per-job latency (mean, p95), and prompt tokens sent / found in the server's KV cache.

    .venv/bin/python benchmarks/concurrency.py [--jobs 8] [--words 300] [--levels 1 4]
        [--servers llama-server lwlocal-serve]

Writes benchmarks/results/concurrency.json and .md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from lwlocal.bench.items import BenchItem
from lwlocal.models.catalogue import embedded_model_path
from lwlocal.runtime.engine import Sampling
from lwlocal.write.batch import run_batch
from lwlocal.write.settings import JobSettings
from tests.support import llama_server
from tests.support.server import free_port, spawn

TOPICS = ["the history of the lighthouse", "how bread rises", "the life of a river",
          "why cities build parks", "the first mechanical clocks", "how bees find flowers",
          "the craft of bookbinding", "the science of sourdough"]
RESULTS = Path(__file__).parent / "results"


def items(jobs: int, words: int) -> list[BenchItem]:
    return [BenchItem(f"job{n}", f"Write an article about {TOPICS[n % len(TOPICS)]}.", "article",
                      words) for n in range(jobs)]


@contextmanager
def llama_server_with(slots: int, ctx: int, log: Path) -> Iterator[str]:
    """llama-server on the default model, ``slots`` slots of ``ctx`` tokens each."""
    model = embedded_model_path()
    assert model is not None
    with llama_server.running(model, log, *llama_server.CHATML, "--flash-attn", "on",
                              "--parallel", str(slots), "--ctx-size", str(ctx * slots)) as server:
        yield server.url


@contextmanager
def lwlocal_serve(ctx: int) -> Iterator[str]:
    port = free_port()
    server = spawn(port, "--ctx", str(ctx), "--words", "1500")
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--words", type=int, default=300)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--ctx", type=int, default=2048, help="context per job")
    parser.add_argument("--servers", nargs="+", choices=("llama-server", "lwlocal-serve"),
                        default=["llama-server", "lwlocal-serve"])
    args = parser.parse_args()
    prompts = items(args.jobs, args.words)
    sampling = Sampling(seed=11)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        local = JobSettings(prompt="", words=1, n_ctx=args.ctx, sampling=sampling)
        report = run_batch(prompts, local, Path(tmp) / "local", 1)
        rows.append({"where": "local engine", **report})
        servers: dict[str, tuple[str, Callable[[int], AbstractContextManager[str]]]] = {
            "llama-server": ("llama-server --parallel N", lambda level: llama_server_with(
                level, args.ctx, Path(tmp) / f"llama-server-{level}.log")),
            "lwlocal-serve": ("lwlocal serve", lambda level: lwlocal_serve(args.ctx))}
        for name, server in (servers[chosen] for chosen in args.servers):
            for level in args.levels:
                with server(level) as url:
                    remote = JobSettings(prompt="", words=1, backend="openai", base_url=url,
                                         sampling=sampling)
                    report = run_batch(prompts, remote, Path(tmp) / f"{name}{level}", level)
                rows.append({"where": name.replace("N", str(level)), **report})
    base = rows[0]["tokens_per_s"]
    lines = ["| backend | concurrency | jobs | jobs/hour | tokens/s | vs local | latency mean s "
             "| latency p95 s | prompt tokens | cached |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        latency = row["latency_seconds"]
        hit = row["cached_prompt_tokens"] / row["prompt_tokens"] if row["prompt_tokens"] else 0
        lines.append(
            f"| {row['where']} | {row['concurrency']} | {row['jobs']} | {row['jobs_per_hour']} "
            f"| {row['tokens_per_s']} | {row['tokens_per_s'] / base:.2f} | {latency['mean']} "
            f"| {latency['p95']} | {row['prompt_tokens']} | {hit:.0%} |")
    table = "\n".join(lines)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    for row in rows:
        row.pop("results")
    (RESULTS / "concurrency.json").write_text(json.dumps(
        {"jobs": args.jobs, "words": args.words, "ctx": args.ctx, "rows": rows}, indent=1))
    (RESULTS / "concurrency.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
