"""Writing commands: write, resume, jobs, export, batch, and the terminal app."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from lwlocal.cli import option_name
from lwlocal.cli.batching import BatchOptions, batch_options, keeping_jobs, plan_batch
from lwlocal.cli.options import (
    MemoryOptions,
    ServerOptions,
    SpeculatingCommand,
    Speculation,
    backend_settings,
    memory_options,
    said_resolved,
    sampling_options,
    server_options,
    servers_options,
    speculate_option,
)
from lwlocal.cli.progress import TaskProgress
from lwlocal.cli.render import (
    err,
    out,
    print_outline,
    print_result,
    print_review,
    print_table,
)
from lwlocal.models.catalogue import resolve
from lwlocal.runtime.engine import Sampling
from lwlocal.util.destination import (
    DestinationError,
    check_destination,
)
from lwlocal.util.errors import LwlocalError, name_settings
from lwlocal.util.interrupt import exit_status
from lwlocal.util.overwrite import refuse_input_as_output
from lwlocal.util.paths import jobs_dir
from lwlocal.write.batch import REPORT, run_batch
from lwlocal.write.export import EXPORT_FORMATS, export
from lwlocal.write.jobs import (
    Session,
    check_destinations,
    check_rewrite,
    check_settings,
    resume_session,
)
from lwlocal.write.journal import BrokenJob, Job, list_jobs
from lwlocal.write.length import choose_target
from lwlocal.write.outline import Outline, load_outline
from lwlocal.write.review import review_file, review_job
from lwlocal.write.settings import MODES, JobSettings


@contextlib.contextmanager
def _keeping(job: Job) -> Iterator[None]:
    """Ctrl-C or SIGTERM: one line saying the job is kept, and the signal's exit status."""
    try:
        yield
    except KeyboardInterrupt as exc:
        err.print(f"[yellow]interrupted[/]: job {job.id} is kept; go on with "
                  f"`lwlocal resume {job.id}`", soft_wrap=True)
        sys.exit(exit_status(exc))


def _run(session: Session, job: Job, outline: Outline | None, output: Path | None,
         as_json: bool, rewrite: tuple[int, ...] = ()) -> None:
    try:
        with _keeping(job), TaskProgress(err) as progress:
            result = session.run(job, outline, progress=progress, rewrite=rewrite)
    except DestinationError as exc:
        raise DestinationError(f"{exc}; job {job.id} is kept: make room, then `lwlocal resume "
                               f"{job.id}`") from exc
    print_result(result, output, as_json)


def renamed(name: str) -> Callable[[click.Context, click.Parameter, bool], None]:
    """The callback of an option that was renamed ``name``: a one-line hint, if given."""
    def hint(context: click.Context, option: click.Parameter, given: bool) -> None:
        if given:
            raise click.UsageError(f"{option.opts[0]} is now {name} (\"plan\" is the memory "
                                   "plan: `lwlocal plan`)", context)
    return hint


@click.command(cls=SpeculatingCommand)
@click.argument("prompt", required=False)
@click.option("--words", type=int, help="Target length in words.")
@click.option("--model", "model", default=None, help="Card name or GGUF path.")
@click.option("--mode", type=click.Choice(MODES), default="agentwrite", show_default=True)
@click.option("--outline-only", "outline_only", is_flag=True,
              help="Print the outline and stop.")
@click.option("--plan-only", is_flag=True, hidden=True, expose_value=False,
              callback=renamed("--outline-only"))
@click.option("--outline", "outline_file", type=click.Path(path_type=Path),
              help="Write from this outline (the JSON --outline-only --json prints).")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Save the document here.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@memory_options
@click.option("--sections", type=int, help="Exact number of sections in the outline.")
@sampling_options
@click.option("--threads", type=int, help="CPU threads (default: physical cores).")
@speculate_option("off")
@server_options
def write(prompt: str | None, words: int | None, model: str | None, mode: str, outline_only: bool,
          outline_file: Path | None, output: Path | None, as_json: bool, sections: int | None,
          threads: int | None, speculate: Speculation, sampling: Sampling,
          server: ServerOptions,
          memory: MemoryOptions) -> None:
    """Write a long document for PROMPT: plan an outline, then write it section by section."""
    outline = load_outline(outline_file, prompt, words) if outline_file else None
    if outline is not None:
        prompt, words, sections = outline.prompt, outline.words, len(outline.sections)
        if mode == "direct":
            raise LwlocalError(f"{outline_file}: an outline is for --mode agentwrite")
    if not prompt:
        raise LwlocalError("give a PROMPT (or --outline FILE)")
    target = choose_target(prompt, words, mode)
    remote = server.server(memory.ctx)
    if remote is not None and model:
        raise LwlocalError("--model names a local model; on a server use --server-model")
    if output is not None:  # before the model loads
        refuse_input_as_output(output, {"outline": outline_file,
                                        "model": None if remote else resolve(model).path})
    speculate = said_resolved(speculate, model, threads, remote=remote is not None,
                              memory=memory)
    settings = JobSettings(prompt=prompt, words=target.words, words_source=target.source,
                           model=model, mode=mode,
                           sections=sections, threads=threads, sampling=sampling,
                           **speculate.settings(), **memory.settings(),
                           **backend_settings(remote))
    check_settings(settings)
    if target.source != "option":
        click.echo(f"lwlocal: {name_settings(target.describe(mode), option_name)}", err=True)
    if not outline_only:
        check_destinations(settings, output)
    session = Session(settings, remote)
    if outline_only:
        with TaskProgress(err) as progress:
            outline = session.outline(progress)
        print_outline(outline, as_json)
        return
    _run(session, session.new_job(), outline, output, as_json)


@click.command(cls=SpeculatingCommand)
@click.argument("job")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Save the document here.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option("--model", help="Go on with this local model (card or GGUF) instead.")
@click.option("--rewrite", type=int, multiple=True, metavar="N",
              help="Write section N again (repeatable); `lwlocal review` says which are worth it.")
@speculate_option(None)
@server_options
def resume(job: str, output: Path | None, as_json: bool, model: str | None,
           rewrite: tuple[int, ...], speculate: Speculation, server: ServerOptions) -> None:
    """Go on with JOB (its id, id prefix or folder) from its first unfinished section, where
    it ran or elsewhere: a job started on a server can go on locally and the reverse. With
    --rewrite N, section N is written again, the others kept."""
    found = Job.open(job, jobs_dir())
    outline = found.outline()
    if outline is not None:  # before loading the model
        check_rewrite(rewrite, len(outline.sections))
    check_destinations(found.meta.settings, output, found.dir)
    backend = server.backend or ("local" if model else None)
    base_url, server_model = server.base_url, server.server_model
    if backend is None and found.meta.settings.backend == "openai":  # where it ran
        backend, base_url = "openai", base_url or found.meta.settings.base_url
        server_model = server_model or found.meta.settings.server_model
    same_server = base_url == found.meta.settings.base_url
    remote = replace(server, backend=backend, base_url=base_url,
                     server_model=server_model).server(
        found.meta.settings.n_ctx if same_server else None)
    if output is not None:
        refuse_input_as_output(output, {"job": found.dir})
    started = found.meta.settings  # its KV cache and flash attention, on the same model
    placed = MemoryOptions(kv_type=started.kv_type, ngl=started.n_gpu_layers, flash_attn=None
                           if started.flash_attn is None else "on" if started.flash_attn else "off")
    speculate = said_resolved(speculate, model or started.model, started.threads,
                              remote=backend == "openai",
                              memory=placed if model in (None, started.model) else None)
    with found.writing():  # before loading the model: a job another process writes is refused
        with _keeping(found):  # Ctrl-C while the model loads stops here once llama.cpp returns
            session = resume_session(found, backend, remote, model, speculate.mode,
                                     speculate.draft_model)
        if output is not None and session.model is not None:
            refuse_input_as_output(output, {"model": session.model.path})
        _run(session, found, None, output, as_json, rewrite)


@click.command()
@click.argument("target")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def review(target: str, as_json: bool) -> None:
    """Review TARGET, a job (id, id prefix or folder) or a Markdown file, section by section:
    planned and written words, sentences about the writing, repeated sentences, boundary
    leaks, what the writer repaired, and the sections worth writing again."""
    path = Path(target)
    found = review_file(path) if path.is_file() else review_job(Job.open(target, jobs_dir()))
    print_review(found.as_dict(), as_json)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
def jobs(as_json: bool) -> None:
    """List writing jobs with their state (a job that cannot be read: broken, and why)."""
    rows, explained = [], []
    for job in list_jobs(jobs_dir()):
        row = _job_row(job)
        if as_json:
            click.echo(json.dumps(row, ensure_ascii=False))
        else:
            rows.append(row)
        if "why" in row:
            explained.append(row)
    if not as_json:
        print_table(JOB_COLUMNS, [tuple(str(row.get(c, "?")) for c in JOB_COLUMNS)
                                  for row in rows])
        for row in explained:  # broken, or interrupted by an error
            click.echo(f"{row['job']}: {row['state']}: {row['why']}", err=True)


JOB_COLUMNS = ("job", "state", "mode", "model", "sections", "words", "created")


def _job_row(job: Job | BrokenJob) -> dict[str, Any]:
    """A line of the jobs listing (a broken job: its id, ``broken`` and why)."""
    if isinstance(job, BrokenJob):
        return {"job": job.id, "state": job.state, "why": job.why}
    outline, finished, settings = job.outline(), job.finished(), job.meta.settings
    why = {"why": job.meta.reason} if job.state == "interrupted" and job.meta.reason else {}
    return {
        "job": job.id, "state": job.state, "mode": settings.mode, "model": settings.model,
        "sections": f"{len(finished)}/{len(outline.sections) if outline else '?'}",
        "words": f"{job.words()}/{settings.words}",
        "created": datetime.fromtimestamp(job.meta.created).isoformat(" ", "seconds"), **why,
    }


@click.command("export")
@click.argument("job")
@click.option("--format", "fmt", type=click.Choice(list(EXPORT_FORMATS)), default="md",
              show_default=True)
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="The file to write.")
def export_command(job: str, fmt: str, output: Path) -> None:
    """Save a job's document (what is written so far, if unfinished) as Markdown, plain text
    or HTML."""
    check_destination(output)
    path = export(Job.open(job, jobs_dir()), fmt, output)
    click.echo(f"{path}: {EXPORT_FORMATS[fmt]}", err=True)


@click.command()
@click.argument("prompts", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Folder for the jobs and report.json.")
@click.option("--mode", type=click.Choice(MODES), default="agentwrite", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@batch_options
@servers_options
def batch(prompts: Path, output: Path, mode: str, as_json: bool, batch: BatchOptions,
          server: ServerOptions) -> None:
    """Write every prompt of PROMPTS (JSON lines with id, prompt, length in words), at most
    --concurrency at a time, each a job with its journal; a rerun skips finished jobs and
    resumes interrupted ones. Reports jobs per hour, tokens/s and per-job latency."""
    plan = plan_batch(prompts, output, (REPORT,), mode, batch, server)
    with keeping_jobs(output) as progress:
        report = run_batch(plan.items, plan.template, output, batch.concurrency, plan.servers,
                           progress)
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False))
    else:
        _print_batch(report, output)
    if report["errors"]:  # as make does: a run that left work undone is not a success
        sys.exit(1)


def _print_batch(report: dict[str, Any], output: Path) -> None:
    latency = report["latency_seconds"]
    out.print(f"{report['jobs']} jobs ({report['errors']} failed, {report['skipped']} done "
              f"before) at concurrency {report['concurrency']} in {report['wall_seconds']} s: "
              f"{report['jobs_per_hour']} jobs/hour, {report['tokens_per_s']} tokens/s, "
              f"latency mean {latency['mean']} s, p95 {latency['p95']} s")
    for row in report["results"]:
        if row["error"]:
            err.print(f"[red]{row['id']}[/]: {escape(row['error'])}")
    click.echo(f"report in {output / 'report.json'}", err=True)


@click.command()
def tui() -> None:
    """The terminal app: model and memory plan, compose, outline editor, writing, library."""
    from lwlocal.tui.app import LwlocalApp

    LwlocalApp().run()
