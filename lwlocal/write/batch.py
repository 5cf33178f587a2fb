"""Many writing jobs at once: bounded concurrency against one server or several, one journal per
job, a rerun that skips finished jobs and resumes interrupted ones, and a throughput report."""

from __future__ import annotations

import contextlib
import itertools
import json
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

from lwlocal.openai.endpoint import Server
from lwlocal.util.atomic import atomic_write
from lwlocal.util.errors import LwlocalError, SettingError
from lwlocal.util.progress import Progress, ProgressCallback, ignore
from lwlocal.write.jobs import Session
from lwlocal.write.journal import Job, unstarted
from lwlocal.write.settings import JobSettings

REPORT = "report.json"
JOBS = "jobs"  # the folder of the jobs' journals, in the batch's output
T = TypeVar("T")
R = TypeVar("R")


class BatchItem(Protocol):
    """One job of a batch: a name, an instruction and its length in words."""

    @property
    def id(self) -> str: ...
    @property
    def prompt(self) -> str: ...
    @property
    def length(self) -> int: ...


def check_concurrency(concurrency: int, backend: str) -> None:
    """Refuse a concurrency that cannot run: one local model writes one job at a time."""
    if concurrency < 1:
        raise SettingError(f"{{concurrency}} {concurrency}: must be at least 1")
    if concurrency > 1 and backend != "openai":
        raise SettingError(f"{{concurrency}} {concurrency} needs {{backend}} openai: a local model "
                           "writes one job at a time (serve it with `lwlocal serve`)")


class SessionPool:
    """One session per worker thread, kept from job to job while the model and server stay the
    same. Each job on a server goes to the server with the fewest jobs in flight (the first
    given of those), on the lowest slot free there, and keeps that slot to its end: a job's
    prefix stays in the slot its turns go to, whatever the other jobs send."""

    def __init__(self, servers: Server | Sequence[Server] | None) -> None:
        self.servers = [servers] if isinstance(servers, Server) else list(servers or ())
        self._busy: list[set[int]] = [set() for _ in self.servers]  # slots in use, a server
        self._local = threading.local()
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def session(self, settings: JobSettings) -> Iterator[Session]:
        """The session for one job, held while the job runs."""
        if settings.backend != "openai" or not self.servers:
            yield self._kept(settings, None)
            return
        with self._lock:
            n = min(range(len(self.servers)), key=lambda i: len(self._busy[i]))
            slot = next(s for s in itertools.count() if s not in self._busy[n])
            self._busy[n].add(slot)
        try:
            server = replace(self.servers[n], slot=slot)
            yield self._kept(replace(settings, base_url=server.base_url), server)
        finally:
            with self._lock:
                self._busy[n].discard(slot)

    def _kept(self, settings: JobSettings, server: Server | None) -> Session:
        """This thread's session for ``settings`` on ``server``: the one it has if it is there."""
        current: Session | None = getattr(self._local, "session", None)
        if current is not None and current.server == server:
            session = current.with_settings(settings)
        else:
            session = Session(settings, server)
        self._local.session = session
        return session


def run_pool(work: Callable[[T], R], items: Iterable[T], concurrency: int,
             cancel: threading.Event, done: Callable[[R], None]) -> None:
    """``work`` over ``items`` on ``concurrency`` threads, ``done`` called (in this thread) for
    each result as it comes. Ctrl-C, or ``done`` failing, sets ``cancel`` (the jobs stop and
    keep their journals), waits for the threads, then goes on with the exception."""
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [pool.submit(work, item) for item in items]
        try:
            for future in as_completed(futures):
                done(future.result())
        except BaseException:  # Ctrl-C, or a result that cannot be kept (a full disk)
            cancel.set()
            for future in futures:
                future.cancel()
            raise


@dataclass
class BatchJob:
    """How one job of the batch went."""

    id: str
    words: int = 0
    generated_tokens: int = 0
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    seconds: float = 0.0
    error: str | None = None
    skipped: bool = False  # finished by an earlier run


@dataclass
class BatchItemRun:
    """One prompt of the batch as a job in ``root``."""

    item: BatchItem
    settings: JobSettings
    root: Path
    pool: SessionPool
    cancel: threading.Event

    def run(self) -> BatchJob:
        folder = self.root / self.item.id
        outcome = BatchJob(self.item.id)
        started = time.monotonic()
        try:
            # a folder stopped as it was made is made again; one that is not a job, refused
            job = None if not folder.exists() or unstarted(folder) else Job.open(str(folder),
                                                                                   self.root)
            if job is not None and job.meta.state == "done":
                done = job.meta.result or {}
                outcome.words, outcome.skipped = done.get("words", 0), True
                return outcome
            settings = self.settings
            if job is not None:  # interrupted last time: go on, where this batch runs
                settings = job.meta.settings.on_backend(
                    settings.backend, settings.base_url, settings.server_model, settings.model)
            with self.pool.session(settings) as session:
                job = job or session.new_job(self.root, self.item.id)
                before = replace(session.chat.stats)
                result = session.run(job, cancel=self.cancel)
                after = session.chat.stats
            outcome.words = result.words
            outcome.generated_tokens = after.generated_tokens - before.generated_tokens
            outcome.prompt_tokens = after.prompt_tokens - before.prompt_tokens
            outcome.cached_prompt_tokens = (after.cached_prompt_tokens
                                            - before.cached_prompt_tokens)
        except LwlocalError as exc:
            outcome.error = str(exc)
        except KeyboardInterrupt:
            outcome.error = "interrupted"
        except Exception as exc:  # noqa: BLE001 - one job's failure is its row, not the batch's
            outcome.error = f"{type(exc).__name__}: {exc}"
        outcome.seconds = round(time.monotonic() - started, 2)
        return outcome


def report(jobs: list[BatchJob], concurrency: int, wall: float) -> dict[str, Any]:
    """Throughput of this run: jobs per hour, aggregate tokens/s, per-job latency."""
    ran = [j for j in jobs if not j.skipped]
    ok = [j for j in ran if j.error is None]
    latencies = sorted(j.seconds for j in ok)
    tokens = sum(j.generated_tokens for j in ran)
    return {
        "concurrency": concurrency,
        "jobs": len(ok),
        "errors": sum(j.error is not None for j in ran),
        "skipped": len(jobs) - len(ran),
        "wall_seconds": round(wall, 2),
        "jobs_per_hour": round(len(ok) / wall * 3600, 2) if wall and ok else 0.0,
        "generated_tokens": tokens,
        "tokens_per_s": round(tokens / wall, 2) if wall else 0.0,
        "prompt_tokens": sum(j.prompt_tokens for j in ran),
        "cached_prompt_tokens": sum(j.cached_prompt_tokens for j in ran),
        "latency_seconds": {
            "mean": round(statistics.fmean(latencies), 2) if latencies else None,
            "p50": round(statistics.median(latencies), 2) if latencies else None,
            "p95": round(latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 2)
            if latencies else None,
            "max": latencies[-1] if latencies else None,
        },
        "results": [asdict(j) for j in jobs],
    }


def run_batch(items: Sequence[BatchItem], template: JobSettings, out: Path, concurrency: int,
              server: Server | Sequence[Server] | None = None,
              progress: ProgressCallback = ignore,
              on_job: Callable[[BatchJob], None] | None = None) -> dict[str, Any]:
    """Write every prompt of ``items`` (``template`` gives all but prompt and length), at most
    ``concurrency`` at a time, spread over the servers given (see :class:`SessionPool`);
    ``on_job`` hears of each job as it ends. The report is saved as ``out/report.json`` and
    returned."""
    check_concurrency(concurrency, template.backend)
    root = out / JOBS
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LwlocalError(f"{out}: cannot hold the jobs ({exc.strerror})") from exc
    pool, cancel = SessionPool(server), threading.Event()
    runs = [BatchItemRun(item, replace(template, prompt=item.prompt, words=item.length), root,
                         pool, cancel) for item in items]
    jobs: list[BatchJob] = []

    def finished(job: BatchJob) -> None:
        if on_job is not None:
            on_job(job)
        jobs.append(job)
        progress(Progress("batch", step=len(jobs), steps=len(runs), done=len(jobs),
                          total=len(runs), message=job.id))

    progress(Progress("batch", steps=len(runs), total=len(runs)))
    started = time.monotonic()
    run_pool(BatchItemRun.run, runs, concurrency, cancel, finished)
    order = {item.id: n for n, item in enumerate(items)}
    jobs.sort(key=lambda j: order[j.id])
    summary = report(jobs, concurrency, time.monotonic() - started)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / REPORT, json.dumps(summary, ensure_ascii=False, indent=1))
    return summary
