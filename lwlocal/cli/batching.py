"""What `batch` and `dataset build` share: their options, the prompts and the settings every job
starts from, checked before any work, and a run that keeps its jobs on Ctrl-C."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from lwlocal.bench.items import BenchItem, load_items
from lwlocal.cli.options import ServerOptions, backend_settings, grouped
from lwlocal.cli.progress import TaskProgress
from lwlocal.cli.render import err
from lwlocal.openai.endpoint import Server
from lwlocal.runtime.engine import Sampling
from lwlocal.util.destination import check_output_folder
from lwlocal.util.interrupt import exit_status
from lwlocal.util.overwrite import refuse_input_as_output
from lwlocal.util.progress import ProgressCallback
from lwlocal.write.batch import check_concurrency
from lwlocal.write.jobs import check_settings
from lwlocal.write.settings import JobSettings


@dataclass(frozen=True)
class BatchOptions:
    """--concurrency, --model, --temperature, --seed, --threads: how the jobs are written."""

    concurrency: int
    model: str | None
    temperature: float
    seed: int
    threads: int | None


def batch_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Adds the batch options as ``batch: BatchOptions``."""
    options = (
        click.option("--concurrency", type=int, default=1, show_default=True,
                     help="Jobs written at once (more than 1 needs --backend openai)."),
        click.option("--model", help="Card name or GGUF path (local backend)."),
        click.option("--temperature", type=float, default=Sampling.temperature,
                     show_default=True),
        click.option("--seed", type=int, default=Sampling.seed, show_default=True),
        click.option("--threads", type=int, help="CPU threads (local backend)."),
    )
    return grouped(command, options, "batch", BatchOptions,
                   ("concurrency", "model", "temperature", "seed", "threads"))


@dataclass(frozen=True)
class BatchPlan:
    """A batch checked before any work: its prompts, the settings each job starts from (all
    but prompt and length) and the servers (none: the local backend)."""

    items: list[BenchItem]
    template: JobSettings
    servers: list[Server]


def plan_batch(prompts: Path, output: Path, outputs: tuple[str, ...], mode: str,
               batch: BatchOptions, server: ServerOptions) -> BatchPlan:
    """Check the options, the output folder (none of its ``outputs`` may be the prompts) and
    read the prompts, before any model loads or anything is written."""
    servers = server.servers()
    for name in outputs:
        refuse_input_as_output(output / name, {"prompts": prompts})
    template = JobSettings(prompt="", words=1, model=batch.model, mode=mode,
                           threads=batch.threads,
                           sampling=Sampling(temperature=batch.temperature, seed=batch.seed),
                           **backend_settings(servers[0] if servers else None))
    check_settings(template)
    check_concurrency(batch.concurrency, template.backend)
    check_output_folder(output)
    return BatchPlan(load_items(prompts), template, servers)


@contextlib.contextmanager
def keeping_jobs(output: Path) -> Iterator[ProgressCallback]:
    """The progress display for a batch; Ctrl-C or SIGTERM: one line saying the jobs are kept,
    and the signal's exit status."""
    try:
        with TaskProgress(err) as progress:
            yield progress
    except KeyboardInterrupt as exc:
        err.print(f"[yellow]interrupted[/]: the jobs are kept in {output}; run the same "
                  "command to go on", soft_wrap=True)
        sys.exit(exit_status(exc))
