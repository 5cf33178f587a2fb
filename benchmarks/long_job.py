"""The issue's long job, measured: `lwlocal write` of a 10,000-word guide on the default model,
with the plan's settings (a context of 8,192 tokens holds about two thirds of it).

What it reports, from `write --json`: the seconds the job took against the plan's prediction,
the prompt tokens evaluated against the final context (``prompt_to_context``; the writer moves
its KV cache's window where the context fills, so the kept sections are not evaluated again),
the window's moves, the decode rate of the first section and of the deepest ones, the tokens
generated per word, and the review's counts (the text as a reader meets it).

    PYTHONPATH=. .venv/bin/python benchmarks/long_job.py --label after
    PYTHONPATH=. .venv/bin/python benchmarks/long_job.py --label before --tree OLD_CHECKOUT

``--tree`` runs another checkout's lwlocal (its own writer) on the same instruction; each run
is kept under its label in ``benchmarks/results/long_job.json`` (``--out``), each job in a
fresh LWLOCAL_HOME (``--work`` keeps them).

``--resume-last`` then stops the finished job as a stop after its second-last section leaves
it (a copy, its last section removed, marked interrupted) and times ``lwlocal resume``, which
replays the window's moves on its way: whether it writes the last section byte for byte as
the uninterrupted job did, and in how long. With ``--work`` holding a job already, that job
is used and nothing is written first.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROMPT = ("Write a 10000-word guide to the history, craft and science of bread baking, from "
          "ancient grains to modern sourdough.")
REVIEW_COUNTS = ("talk", "repeated", "boundary", "quote", "title_repeated", "repeated_titles")


def write(tree: Path, home: Path, words: int | None) -> dict[str, Any]:
    """The job written by the lwlocal of ``tree``: its ``write --json``."""
    env = {**os.environ, "PYTHONPATH": str(tree), "LWLOCAL_HOME": str(home)}
    length = ["--words", str(words)] if words else []
    proc = subprocess.run([sys.executable, "-m", "lwlocal", "write", PROMPT, *length, "--json"],
                          cwd=tree, env=env, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"lwlocal write failed: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout)


def resume_last(tree: Path, home: Path) -> dict[str, Any]:
    """The finished job in ``home`` resumed from before its last section, in a copy."""
    (job,) = (home / "jobs").iterdir()
    copy = home / "resumed"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(job, copy / "jobs" / job.name)
    sections = copy / "jobs" / job.name / "sections"
    last = max(sections.glob("[0-9][0-9][0-9].md"))
    expected = last.read_bytes()
    for path in [last, last.with_suffix(".repairs.json"), sections.parent / "document.md"]:
        path.unlink(missing_ok=True)
    meta = sections.parent / "job.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "state": "interrupted",
                                "result": None}))
    env = {**os.environ, "PYTHONPATH": str(tree), "LWLOCAL_HOME": str(copy)}
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "lwlocal", "resume", job.name, "--json"],
                          cwd=tree, env=env, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - started
    result = json.loads(proc.stdout)
    return {"section": int(last.stem), "same_text": last.read_bytes() == expected,
            "seconds": round(seconds, 1),
            "prompt_tokens_evaluated": result["prompt_tokens_evaluated"],
            "window_moves": result.get("window_moves"),
            "section_seconds": round(result["sections"][-1]["generated_tokens"]
                                     / result["sections"][-1]["decode_tokens_per_s"], 1)}


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """What the run shows of time, the window and the text."""
    rates = [s.get("decode_tokens_per_s", 0.0) for s in result["sections"]]
    deepest = rates[len(rates) * 2 // 3:]  # the last third: written at the greatest depth
    review = result["review"]
    return {
        "words": result["words"], "sections": len(result["sections"]),
        "settings": result["settings"], "seconds": result["seconds"],
        "predicted_seconds": result["predicted_seconds"],
        "prompt_tokens_evaluated": result["prompt_tokens_evaluated"],
        "context_tokens": result["context_tokens"],
        "prompt_to_context": result["prompt_to_context"],
        "window_moves": result.get("window_moves"),
        "generated_tokens": result["generated_tokens"],
        "tokens_per_word": round(result["generated_tokens"] / max(1, result["words"]), 2),
        "decode_tokens_per_s": result["decode_tokens_per_s"],
        "section_decode_tokens_per_s": rates,
        "deepest_vs_first": round(sum(deepest) / len(deepest) / rates[0], 3)
        if rates and rates[0] and deepest else None,
        "review": {key: review[key] for key in REVIEW_COUNTS},
        "repaired": review["repaired"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--label", required=True)
    parser.add_argument("--tree", type=Path, default=Path(__file__).parents[1])
    parser.add_argument("--words", type=int, help="another length (default: the instruction's)")
    parser.add_argument("--work", type=Path, help="keep the job's home here")
    parser.add_argument("--resume-last", action="store_true",
                        help="then resume it from before its last section")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "long_job.json")
    args = parser.parse_args()
    tree = args.tree.resolve()
    runs = json.loads(args.out.read_text()) if args.out.exists() else {}
    with tempfile.TemporaryDirectory() as scratch:
        home = args.work or Path(scratch)
        home.mkdir(parents=True, exist_ok=True)
        run = runs.get(args.label, {}) if (home / "jobs").exists() else summary(
            write(tree, home, args.words))
        if args.resume_last:
            run["resume_last"] = resume_last(tree, home)
    runs[args.label] = run
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(runs, indent=2) + "\n")
    print(json.dumps(run, indent=2))


if __name__ == "__main__":
    main()
