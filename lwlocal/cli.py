"""The ``lwlocal`` command: parses arguments, calls the library, prints."""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from lwlocal.console_progress import WriteProgress
from lwlocal.engine import Sampling
from lwlocal.errors import LwlocalError
from lwlocal.models import CARDS, local_file
from lwlocal.paths import jobs_dir
from lwlocal.write.jobs import MODES, JobSettings, Session, resume_session
from lwlocal.write.journal import Job, atomic_write, list_jobs
from lwlocal.write.plan import Outline, load_outline
from lwlocal.write.words import count_words
from lwlocal.write.writer import JobResult

err = Console(stderr=True)
out = Console(highlight=False, soft_wrap=True)


def _check_output(path: Path | None) -> None:
    """Fail before any work if the output file could not be written."""
    if path is None:
        return
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise LwlocalError(f"{path}: is a folder, not a file")
    if not parent.is_dir():
        raise LwlocalError(f"{path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise LwlocalError(f"{path}: not writable")


def _print_outline(outline: Outline, as_json: bool) -> None:
    if as_json:
        click.echo(outline.to_json())
        return
    table = Table(title=f"Outline: {outline.planned_words} words")
    for column in ("#", "title", "main point", "words"):
        table.add_column(column)
    for i, s in enumerate(outline.sections, 1):
        table.add_row(str(i), s.title, s.main_point, str(s.words))
    out.print(table)


def _finish(result: JobResult, output: Path | None, as_json: bool, document: str) -> None:
    if output is not None:
        atomic_write(output, document)
    if as_json:
        click.echo(json.dumps(result.as_dict(), ensure_ascii=False))
        return
    if output is None:
        out.print(document)
    d = result.as_dict()
    err.print(
        f"[green]job {result.job}[/]: {d['words']} words in {len(result.sections)} sections "
        f"({d['planned_words']} planned), {d['generated_tokens']} tokens at "
        f"{d['decode_tokens_per_s']} tok/s; prompt tokens evaluated / context = "
        f"{d['prompt_to_context']}" + (f"; saved {output}" if output else "")
    )


def _run(session: Session, job: Job, outline: Outline | None, output: Path | None,
         as_json: bool) -> None:
    try:
        with WriteProgress(err) as progress:
            result = session.run(job, outline, progress=progress)
    except KeyboardInterrupt:
        err.print(f"[yellow]interrupted[/]: job {job.id} is kept; go on with "
                  f"`lwlocal resume {job.id}`")
        sys.exit(130)
    _finish(result, output, as_json, Path(result.document).read_text(encoding="utf-8"))


@click.group()
@click.version_option(package_name="lwlocal")
def cli() -> None:
    """Ultra-long text generation with LongWriter models on llama.cpp, offline."""


@cli.command()
def models() -> None:
    """List the model cards and whether a local GGUF file is present."""
    table = Table()
    for column in ("name", "architecture", "params", "layers", "kv heads", "context",
                   "format", "local file"):
        table.add_column(column)
    for card in CARDS.values():
        path = local_file(card)
        present = f"{path} ({path.stat().st_size / 2**20:.0f} MiB)" if path else "-"
        table.add_row(card.name, card.architecture, f"{card.n_params / 1e9:.2f}B",
                      str(card.n_layers), str(card.n_kv_heads), str(card.context_length),
                      card.prompt_format, present)
    out.print(table)


@cli.command()
@click.argument("prompt", required=False)
@click.option("--words", type=int, help="Target length in words.")
@click.option("--model", "model", default=None, help="Card name or GGUF path.")
@click.option("--mode", type=click.Choice(MODES), default="agentwrite", show_default=True)
@click.option("--plan-only", is_flag=True, help="Print the outline and stop.")
@click.option("--outline", "outline_file", type=click.Path(path_type=Path),
              help="Write from this outline (the JSON --plan-only --json prints).")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Save the document here.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option("--ctx", type=int, help="Context size in tokens (default: fits the job).")
@click.option("--sections", type=int, help="Exact number of sections to plan.")
@click.option("--temperature", type=float, default=Sampling.temperature, show_default=True)
@click.option("--top-p", type=float, default=Sampling.top_p, show_default=True)
@click.option("--repeat-penalty", type=float, default=Sampling.repeat_penalty, show_default=True)
@click.option("--seed", type=int, default=Sampling.seed, show_default=True)
@click.option("--threads", type=int, help="CPU threads (default: physical cores).")
def write(prompt: str | None, words: int | None, model: str | None, mode: str, plan_only: bool,
          outline_file: Path | None, output: Path | None, as_json: bool, ctx: int | None,
          sections: int | None, temperature: float, top_p: float, repeat_penalty: float,
          seed: int, threads: int | None) -> None:
    """Write a long document for PROMPT: plan an outline, then write it section by section."""
    outline = load_outline(outline_file, prompt, words) if outline_file else None
    if outline is not None:
        prompt, words, sections = outline.prompt, outline.words, len(outline.sections)
        if mode == "direct":
            raise LwlocalError(f"{outline_file}: an outline is for --mode agentwrite")
    if not prompt:
        raise LwlocalError("give a PROMPT (or --outline FILE)")
    if words is None:
        raise LwlocalError("--words is required: the target length of the document")
    _check_output(output)
    sampling = Sampling(temperature=temperature, top_p=top_p, repeat_penalty=repeat_penalty,
                        seed=seed)
    settings = JobSettings(prompt=prompt, words=words, model=model, mode=mode, n_ctx=ctx,
                           sections=sections, threads=threads, sampling=sampling)
    session = Session(settings)
    if plan_only:
        with WriteProgress(err) as progress:
            outline = session.plan(progress)
        _print_outline(outline, as_json)
        return
    _run(session, session.new_job(), outline, output, as_json)


@cli.command()
@click.argument("job")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Save the document here.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def resume(job: str, output: Path | None, as_json: bool) -> None:
    """Go on with JOB (its id, id prefix or folder) from its first unfinished section."""
    found = Job.open(job, jobs_dir())
    _check_output(output)
    _run(resume_session(found), found, None, output, as_json)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
def jobs(as_json: bool) -> None:
    """List writing jobs with their state."""
    table = Table()
    for column in ("job", "state", "mode", "model", "sections", "words", "created"):
        table.add_column(column)
    for job in list_jobs(jobs_dir()):
        outline = job.outline()
        finished = job.finished()
        words = sum(count_words(job.section_text(i) or "") for i in finished)
        row = {
            "job": job.id, "state": job.state, "mode": job.meta.get("mode"),
            "model": job.meta.get("model"),
            "sections": f"{len(finished)}/{len(outline.sections) if outline else '?'}",
            "words": f"{words}/{job.meta.get('words')}",
            "created": datetime.fromtimestamp(job.meta.get("created", 0)).isoformat(" ", "seconds"),
        }
        if as_json:
            click.echo(json.dumps(row, ensure_ascii=False))
        else:
            table.add_row(*(str(v) for v in row.values()))
    if not as_json:
        out.print(table)


def main() -> None:
    """Entry point: run the command; a bad input ends with one line on stderr and exit 1."""
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except LwlocalError as exc:
        click.echo(f"lwlocal: error: {exc}", err=True)
        sys.exit(1)
