"""Throughput of many writing jobs against a loopback `lwlocal serve`, at concurrency 1, 2, 4,
with the same jobs written by the local engine (no server) as the reference, in one run.

For each level: jobs per hour, aggregate generated tokens/s, per-job latency (mean, p95), and
prompt tokens sent / found in the server's KV cache (a single-slot server loses a job's prefix
whenever another job's turn comes between two of its sections).

    .venv/bin/python benchmarks/concurrency.py [--jobs 4] [--words 300] [--levels 1 2 4]

Writes benchmarks/results/concurrency.json and .md.
"""

from __future__ import annotations

import argparse
import json
import socket
import tempfile
from pathlib import Path

from lwlocal.bench.items import BenchItem
from lwlocal.runtime.engine import Sampling
from lwlocal.write.batch import run_batch
from lwlocal.write.settings import JobSettings
from tests.support.server import spawn

TOPICS = ["the history of the lighthouse", "how bread rises", "the life of a river",
          "why cities build parks", "the first mechanical clocks", "how bees find flowers",
          "the craft of bookbinding", "the science of sourdough"]
RESULTS = Path(__file__).parent / "results"


def items(jobs: int, words: int) -> list[BenchItem]:
    return [BenchItem(f"job{n}", f"Write an article about {TOPICS[n % len(TOPICS)]}.", "article",
                      words) for n in range(jobs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--words", type=int, default=300)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--ctx", type=int, default=2048)
    args = parser.parse_args()
    prompts = items(args.jobs, args.words)
    sampling = Sampling(seed=11)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        local = JobSettings(prompt="", words=1, n_ctx=args.ctx, sampling=sampling)
        report = run_batch(prompts, local, Path(tmp) / "local", 1)
        rows.append({"where": "local engine", **report})
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = spawn(port, "--ctx", str(args.ctx), "--words", "1500")
        url = f"http://127.0.0.1:{port}/v1"
        try:
            for level in args.levels:
                remote = JobSettings(prompt="", words=1, backend="openai", base_url=url,
                                     sampling=sampling)
                report = run_batch(prompts, remote, Path(tmp) / f"c{level}", level)
                rows.append({"where": "lwlocal serve", **report})
        finally:
            server.terminate()
            server.wait()
    base = rows[0]["tokens_per_s"]
    lines = ["| backend | concurrency | jobs | jobs/hour | tokens/s | vs local | latency mean s "
             "| latency p95 s | prompt tokens | of which cached |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        latency = row["latency_seconds"]
        lines.append(
            f"| {row['where']} | {row['concurrency']} | {row['jobs']} | {row['jobs_per_hour']} "
            f"| {row['tokens_per_s']} | {row['tokens_per_s'] / base:.2f} | {latency['mean']} "
            f"| {latency['p95']} | {row['prompt_tokens']} | {row['cached_prompt_tokens']} |")
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
