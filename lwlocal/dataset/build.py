"""Building a dataset folder: duplicate instructions left out first, every other instruction
written as a batch job (``DIR/jobs``), each finished job judged by the filters as it ends and
appended to ``data.jsonl`` or ``rejected.jsonl``. A rerun goes on: what is decided stays, jobs
that failed or were stopped are resumed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lwlocal.bench.scoring import output_length
from lwlocal.dataset.filters import Filters, duplicate_instructions
from lwlocal.dataset.ledger import Ledger
from lwlocal.openai.endpoint import Server
from lwlocal.util.destination import write_error
from lwlocal.util.progress import ProgressCallback, ignore
from lwlocal.write.batch import JOBS, BatchItem, BatchJob, run_batch
from lwlocal.write.export import document
from lwlocal.write.journal import Job
from lwlocal.write.review import review_job
from lwlocal.write.settings import JobSettings
from lwlocal.write.words import language


@dataclass
class BuildResult:
    """What a build decided this run (``kept``, ``rejected`` by reason), the jobs that failed
    (run again to go on with them), the folder's totals, and the batch's report (None when
    every job was decided before)."""

    kept: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    failed: list[str] = field(default_factory=list)
    total_kept: int = 0
    total_rejected: int = 0
    report: dict[str, Any] | None = None


def build_dataset(items: Sequence[BatchItem], template: JobSettings, out: Path,
                  concurrency: int, filters: Filters, servers: Sequence[Server] = (),
                  progress: ProgressCallback = ignore) -> BuildResult:
    """Write a document for every instruction of ``items`` not decided yet in ``out``, at most
    ``concurrency`` at a time (``template`` gives all but prompt and length; spread over
    ``servers``), and keep or reject each as it finishes."""
    filters.check()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(out, exc) from exc
    ledger, result = Ledger(out), BuildResult()
    by_id = {item.id: item for item in items}
    for item_id, rejection in duplicate_instructions(items, filters.near_duplicate).items():
        if not ledger.decided(by_id[item_id]):
            ledger.reject(by_id[item_id], [rejection])
            result.rejected[rejection.reason] += 1

    def judge(job: BatchJob) -> None:
        if job.error is not None:
            result.failed.append(job.id)
            return
        item, found = by_id[job.id], Job.load(out / JOBS / job.id, out / JOBS)
        text = document(found).strip()
        rejections = filters.judge(item.prompt, text, review_job(found).as_dict())
        if not rejections:
            ledger.keep(item, text)
            result.kept += 1
            return
        ledger.reject(item, rejections, words=output_length(text), language=language(text))
        result.rejected.update(r.reason for r in rejections)

    todo = [item for item in items if not ledger.decided(item)]
    if todo:
        result.report = run_batch(todo, template, out, concurrency, servers or None, progress,
                                  on_job=judge)
    result.total_kept, result.total_rejected = len(ledger.kept), len(ledger.rejected)
    return result
