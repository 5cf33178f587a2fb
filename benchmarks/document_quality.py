"""What the documents lwlocal writes are like: for each of its own instructions (guides,
stories, essays, reports; 300-3,000 words; English and Chinese), one AgentWrite job at the
length the instruction asks for (free length), reviewed section by section
(`lwlocal.write.review`) and scored for length (LongBench-Write's S_l).

Each job runs as `lwlocal write PROMPT --json` in a child process whose `PYTHONPATH` is
``--tree`` (this checkout by default; another checkout measures another version of the writer,
reviewed the same way), on the default model, locally or through llama.cpp's own `llama-server`
(``--server``, built by `make llama-server`, started here on 127.0.0.1 with the default model):

    PYTHONPATH=. .venv/bin/python benchmarks/document_quality.py --label after
    PYTHONPATH=. .venv/bin/python benchmarks/document_quality.py --label after-server --server
    PYTHONPATH=. .venv/bin/python benchmarks/document_quality.py --label before --tree OLD
    PYTHONPATH=. .venv/bin/python benchmarks/document_quality.py --label after-lbw \
        --prompts benchmarks/data/longbench_write_sample.jsonl

``--prompts`` takes other instructions in the same layout (LongBench-Write's own fields);
benchmarks/data/longbench_write_sample.jsonl holds six of LongBench-Write's English ones
(THUDM/LongWriter, evaluation/longbench_write_en.jsonl), instructions nobody here wrote.

Each run is kept under its label in benchmarks/results/document_quality.json as each job is
done; the table of all runs, a table for each set of instructions, over the instructions the
runs of that set all have done, goes to
benchmarks/results/document_quality.md (``--table`` prints it). With ``--work DIR`` the jobs
are kept there, and ``--review-again`` reviews a run's kept jobs anew (after a change to the
detectors) without writing them again.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from filelock import FileLock

from lwlocal.bench.items import load_items
from lwlocal.bench.scoring import length_score, output_length
from lwlocal.models.catalogue import embedded_model_path
from lwlocal.write.journal import Job
from lwlocal.write.review import review_job
from tests.support import llama_server

HERE = Path(__file__).parent
PROMPTS = HERE / "data" / "document_quality.jsonl"
RESULTS = HERE / "results"
SERVER_CTX = 16384


@contextmanager
def server(log: Path) -> Iterator[str]:
    """llama-server on the default model (one slot, the context a 3,000-word job plans)."""
    model = embedded_model_path()
    assert model is not None
    with llama_server.running(model, log, *llama_server.CHATML, "--flash-attn", "on",
                              "--ctx-size", str(SERVER_CTX)) as running:
        yield running.url


def write(prompt: str, tree: Path, home: Path, url: str | None) -> dict[str, Any]:
    """One job written by the lwlocal of ``tree`` (run in it: ``-m`` puts the working folder
    first on the path): its result (``write --json``)."""
    remote = ["--backend", "openai", "--base-url", url, "--ctx", str(SERVER_CTX)] if url else []
    env = {**os.environ, "PYTHONPATH": str(tree), "LWLOCAL_HOME": str(home)}
    proc = subprocess.run([sys.executable, "-m", "lwlocal", "write", prompt, "--json", *remote],
                          cwd=tree, env=env, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"lwlocal write failed: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout)


def measure(prompts: Path, tree: Path, with_server: bool, work: Path,
            keep: Callable[[list[dict[str, Any]]], None]) -> list[dict[str, Any]]:
    """Write and review each instruction's job; ``keep`` is given the rows after each."""
    rows: list[dict[str, Any]] = []
    home = work / "home"
    running = server(work / "llama-server.log") if with_server else nullcontext(None)
    with running as url:
        for item in load_items(prompts):
            started = time.perf_counter()
            result = write(item.prompt, tree, home, url)
            seconds = time.perf_counter() - started
            job = Job.open(result["job"], home / "jobs")
            document = Path(result["document"]).read_text(encoding="utf-8")
            length = output_length(document)
            rows.append({"id": item.id, "type": item.type, "required": item.length,
                         "length": length, "S_l": round(length_score(length, item.length), 2),
                         "seconds": round(seconds, 1), "job": str(job.dir),
                         "prompt_to_context": result["prompt_to_context"],
                         "decode_tokens_per_s": result["decode_tokens_per_s"],
                         "review": review_job(job).as_dict()})
            keep(rows)
            review = rows[-1]["review"]
            print(f"{item.id}: {length}/{item.length} words, S_l {rows[-1]['S_l']}, "
                  f"talk {review['talk']}, repeated {review['repeated']} of "
                  f"{review['sentences']} sentences, {seconds:.0f} s", flush=True)
    return rows


def collect(prompts: Path, work: Path) -> list[dict[str, Any]]:
    """The rows of the finished jobs kept in ``work`` (a run stopped part-way), in the
    instructions' order; their time is not known."""
    jobs_dir = work / "home" / "jobs"
    done = {job.meta.settings.prompt: job for job in (Job.open(p.name, jobs_dir)
                                                       for p in sorted(jobs_dir.iterdir()))
            if job.state == "done"}
    rows = []
    for item in load_items(prompts):
        job = done.get(item.prompt)
        if job is None:
            continue
        length = output_length(job.assemble())
        rows.append({"id": item.id, "type": item.type, "required": item.length,
                     "length": length, "S_l": round(length_score(length, item.length), 2),
                     "seconds": None, "job": str(job.dir), "review": review_job(job).as_dict()})
    return rows


def review_again(rows: list[dict[str, Any]]) -> None:
    """Review each row's kept job anew."""
    for row in rows:
        row["review"] = review_job(Job.open(row["job"], Path(row["job"]).parent)).as_dict()


def totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The run's figures: S_l's mean and the review's counts over all documents."""
    reviews = [r["review"] for r in rows]
    sentences = sum(r["sentences"] for r in reviews)

    def count(key: str) -> int:
        return sum(r[key] if isinstance(r[key], int) else len(r[key]) for r in reviews)

    return {
        "documents": len(rows),
        "S_l": round(sum(r["S_l"] for r in rows) / len(rows), 2),
        "sentences": sentences,
        "talk_share": round(count("talk") / sentences, 4) if sentences else 0.0,
        "repeated_share": round(count("repeated") / sentences, 4) if sentences else 0.0,
        "boundary": count("boundary"), "quote": count("quote"),
        "title_repeated": count("title_repeated"), "repeated_titles": count("repeated_titles"),
        "short_sections": count("short_sections"),
        "repaired": sum(sum(r["repaired"].values()) for r in reviews),
        "seconds": None if any(r["seconds"] is None for r in rows) else round(
            sum(r["seconds"] for r in rows), 1),
        "max_prompt_to_context": max((r["prompt_to_context"] for r in rows
                                      if r.get("prompt_to_context") is not None), default=None),
    }


TABLE = ("S_l", "talk_share", "repeated_share", "boundary", "quote", "title_repeated",
         "repeated_titles", "short_sections", "repaired", "max_prompt_to_context", "seconds")


def table(runs: dict[str, Any]) -> str:
    """A table for each set of instructions: its runs' totals over the instructions every one
    of them has done (a run stopped early is compared on what it did)."""
    sets: dict[str, dict[str, Any]] = {}
    for label, run in runs.items():
        sets.setdefault(run.get("prompts", PROMPTS.name), {})[label] = run
    lines: list[str] = []
    for name, of_set in sets.items():
        common = set.intersection(*({r["id"] for r in run["items"]} for run in of_set.values()))
        lines += [f"## {name}: {len(common)} instructions", "", ", ".join(sorted(common)), "",
                  "| run | " + " | ".join(TABLE) + " |", "|---" * (len(TABLE) + 1) + "|"]
        for label, run in of_set.items():
            t = totals([r for r in run["items"] if r["id"] in common])
            cells = [f"{t[k]:.1%}" if k.endswith("share") else str(t[k]) for k in TABLE]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--label", required=True, help="The run's name in the results.")
    parser.add_argument("--tree", type=Path, default=HERE.parent,
                        help="The checkout whose lwlocal writes (default: this one).")
    parser.add_argument("--prompts", type=Path, default=PROMPTS,
                        help="The instructions (default: lwlocal's own twelve).")
    parser.add_argument("--server", action="store_true", help="Write through llama-server.")
    parser.add_argument("--work", type=Path, help="Keep the jobs here (default: a temporary "
                                                  "folder).")
    parser.add_argument("--review-again", action="store_true",
                        help="Review the run's kept jobs again instead of writing.")
    parser.add_argument("--collect", action="store_true",
                        help="Make the run of the finished jobs kept in --work (a run stopped "
                             "part-way; their time is not known).")
    parser.add_argument("--table", action="store_true",
                        help="Print the table of the runs kept, and nothing else.")
    args = parser.parse_args()
    if args.table:
        print(table(json.loads((RESULTS / "document_quality.json").read_text())))
        return
    if args.collect:
        rows = collect(args.prompts, args.work)
        save(args.label, {"tree": str(args.tree), "server": args.server,
                          "prompts": args.prompts.name, "totals": totals(rows), "items": rows})
        return
    if args.review_again:
        run = json.loads((RESULTS / "document_quality.json").read_text())[args.label]
        review_again(run["items"])
        save(args.label, {**run, "totals": totals(run["items"])})
        return

    def keep(rows: list[dict[str, Any]]) -> None:  # each item as it is done
        save(args.label, {"tree": str(args.tree), "server": args.server,
                          "prompts": args.prompts.name, "totals": totals(rows), "items": rows})

    with tempfile.TemporaryDirectory(prefix="docq-") as temporary:
        work = args.work or Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        measure(args.prompts.resolve(), args.tree.resolve(), args.server, work, keep)


def save(label: str, run: dict[str, Any]) -> None:
    """Keep ``run`` under ``label`` in the results (runs written at once each keep theirs)."""
    out = RESULTS / "document_quality.json"
    with FileLock(str(out) + ".lock"):
        runs = json.loads(out.read_text()) if out.is_file() else {}
        runs[label] = run
        out.write_text(json.dumps(runs, ensure_ascii=False, indent=1) + "\n")
        (RESULTS / "document_quality.md").write_text(table(runs))


if __name__ == "__main__":
    main()
