"""Running a benchmark: every prompt for every model and mode as a job with its journal, its
length score (and quality score with a judge), appended to ``results.jsonl`` as it finishes, so
that running the same command again skips what is done and resumes what was interrupted."""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lwlocal.bench.items import RANGES, BenchItem
from lwlocal.bench.judge import Judge, quality_score
from lwlocal.bench.scoring import length_score, output_length
from lwlocal.openai.endpoint import Server
from lwlocal.runtime.engine import Sampling
from lwlocal.util.atomic import append_line
from lwlocal.util.destination import write_error
from lwlocal.util.errors import LwlocalError
from lwlocal.util.progress import Progress, ProgressCallback, ignore
from lwlocal.write.batch import SessionPool, check_concurrency, run_pool
from lwlocal.write.export import document
from lwlocal.write.journal import Job
from lwlocal.write.length import choose_target
from lwlocal.write.settings import JobSettings

RESULTS = "results.jsonl"
TEMPERATURE = 0.5  # LongBench-Write's generation setting


@dataclass
class BenchResult:
    model: str
    mode: str
    id: str
    type: str
    range: str
    required: int
    length: int
    length_score: float
    quality_score: float | None = None
    scores: dict[str, int] | None = None
    generated_tokens: int = 0
    decode_tokens_per_s: float = 0.0
    seconds: float = 0.0
    job: str = ""
    error: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return self.model, self.mode, self.id


@dataclass
class BenchRun:
    """What to run: prompts, models (card names or GGUF paths; with a ``server``, its model
    names), modes, where results go, how many items at once (``concurrency``, on a server)."""

    items: list[BenchItem]
    models: list[str]
    modes: list[str]
    out: Path
    judge: str | None = None
    given_length: bool = False  # each item's length given as the target, not read from it
    threads: int | None = None
    sampling: Sampling = field(default_factory=lambda: Sampling(temperature=TEMPERATURE))
    server: Server | None = None
    concurrency: int = 1
    speculate: dict[str, str] = field(default_factory=dict)  # how each model decodes (off)
    draft_model: str | None = None  # with speculate "draft"

    @property
    def jobs_root(self) -> Path:
        return self.out / "jobs"


def load_results(out: Path) -> list[BenchResult]:
    """The results of earlier runs; one line naming the file and line for one that cannot be
    read."""
    path = out / RESULTS
    if not path.is_file():
        return []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise LwlocalError(f"{path}: cannot read the results ({exc})") from None
    results = []
    for number, line in enumerate(lines, 1):
        if not line:
            continue
        try:
            results.append(BenchResult(**json.loads(line)))
        except (ValueError, TypeError, RecursionError) as exc:
            raise LwlocalError(f"{path}:{number}: not a result line ({exc})") from None
    return results


def _job_name(model: str, mode: str, item: BenchItem) -> str:
    model_slug = re.sub(r"[^A-Za-z0-9.]+", "-", Path(model).name).strip("-")
    return f"{model_slug}-{mode}-{item.id}"


class _Runner:
    def __init__(self, run: BenchRun, progress: ProgressCallback) -> None:
        self.run, self.progress = run, progress
        self.sessions = SessionPool(run.server)
        self.cancel = threading.Event()
        self._judge: Judge | None = None
        self._judge_lock = threading.Lock()  # one judge model, one item at a time

    def score(self, prompt: str, text: str) -> dict[str, int] | None:
        if not self.run.judge:
            return None
        with self._judge_lock:
            self._judge = self._judge or Judge(self.run.judge, n_threads=self.run.threads)
            return self._judge.score(prompt, text)

    def settings(self, model: str, mode: str, item: BenchItem) -> JobSettings:
        run, server = self.run, self.run.server
        remote = ({"backend": "openai", "base_url": server.base_url,
                   "server_model": server.model} if server else {"model": model})
        target = choose_target(item.prompt, item.length if run.given_length else None, mode)
        return JobSettings(prompt=item.prompt, words=target.words, words_source=target.source,
                           mode=mode, threads=run.threads, sampling=run.sampling,
                           speculate=run.speculate.get(model, "off"),
                           draft_model=run.draft_model, **remote)

    def item(self, key: tuple[str, str, BenchItem]) -> BenchResult:
        model, mode, item = key
        run = self.run
        result = BenchResult(model, mode, item.id, item.type, item.range, item.length, 0, 0.0,
                             job=_job_name(model, mode, item))
        folder = run.jobs_root / result.job
        settings = self.settings(model, mode, item)
        start = time.monotonic()
        try:
            job = Job.open(str(folder), run.jobs_root) if folder.is_dir() else None
            if job is not None:  # interrupted last time: go on from its journal
                settings = job.meta.settings.on_backend(
                    settings.backend, settings.base_url, settings.server_model)
            with self.sessions.session(settings) as session:
                job = job or session.new_job(run.jobs_root, result.job)
                written = session.run(job, progress=self.progress, cancel=self.cancel)
        except LwlocalError as exc:
            result.error, result.seconds = str(exc), time.monotonic() - start
            return result
        text = document(job)
        result.length = output_length(text)
        result.length_score = round(length_score(result.length, item.length), 2)
        result.generated_tokens = written.stats.get("generated_tokens", 0)
        result.decode_tokens_per_s = written.stats.get("decode_tokens_per_s", 0.0)
        result.seconds = round(time.monotonic() - start, 2)
        result.scores = self.score(item.prompt, text)
        if result.scores is not None:
            result.quality_score = round(quality_score(result.scores), 2)
        return result


def run_bench(run: BenchRun, progress: ProgressCallback = ignore) -> list[BenchResult]:
    """Run what is not in ``results.jsonl`` yet (or ended in an error last time: tried again),
    ``run.concurrency`` items at a time; every result of this run's selection."""
    check_concurrency(run.concurrency, "openai" if run.server else "local")
    try:
        run.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(run.out, exc) from exc
    done = {r.key: r for r in load_results(run.out)}  # the latest line of an item wins
    selection = [(model, mode, item) for model in run.models for mode in run.modes
                 for item in run.items]
    todo = [(model, mode, item) for model, mode, item in selection
            if (model, mode, item.id) not in done or done[(model, mode, item.id)].error]
    # one job's progress at a time is readable; with several at once, count items only
    runner = _Runner(run, progress if run.concurrency == 1 else ignore)
    finished = len(selection) - len(todo)

    def record(result: BenchResult) -> None:
        nonlocal finished
        done[result.key] = result
        append_line(run.out / RESULTS, json.dumps(asdict(result), ensure_ascii=False) + "\n")
        finished += 1
        progress(Progress("bench", step=finished, steps=len(selection), done=finished,
                          total=len(selection), message=f"{Path(result.model).name} "
                          f"{result.mode} {result.id}"))

    progress(Progress("bench", step=finished, steps=len(selection), done=finished,
                      total=len(selection)))
    run_pool(runner.item, todo, run.concurrency, runner.cancel, record)
    return [done[(model, mode, item.id)] for model, mode, item in selection]


def summarize(results: list[BenchResult]) -> list[dict[str, Any]]:
    """Per model and mode: S_l overall and per length range, S_q and S where judged, tokens,
    decode speed and time."""
    rows = []
    for model, mode in dict.fromkeys((r.model, r.mode) for r in results):
        mine = [r for r in results if (r.model, r.mode) == (model, mode)]
        row: dict[str, Any] = {"model": model, "mode": mode, "items": len(mine),
                               "errors": sum(r.error is not None for r in mine),
                               "length_score": _mean([r.length_score for r in mine])}
        for label, _, _ in RANGES:
            row[f"length_score_{label}"] = _mean([r.length_score for r in mine
                                                  if r.range == label])
        judged = [r.quality_score for r in mine if r.quality_score is not None]
        row["quality_score"] = _mean(judged)
        row["score"] = (None if row["quality_score"] is None
                        else round((row["length_score"] + row["quality_score"]) / 2, 2))
        row["generated_tokens"] = sum(r.generated_tokens for r in mine)
        row["seconds"] = round(sum(r.seconds for r in mine), 1)
        row["decode_tokens_per_s"] = _mean([r.decode_tokens_per_s for r in mine
                                            if r.generated_tokens])
        rows.append(row)
    return rows


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 2) if values else None


