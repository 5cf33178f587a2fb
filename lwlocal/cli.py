"""The ``lwlocal`` command: parses arguments, calls the library, prints."""

from __future__ import annotations

import json
import math
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from warnings import showwarning as show_python_warning

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lwlocal import hardware
from lwlocal.bench.batch import run_batch
from lwlocal.bench.items import load_items
from lwlocal.bench.plots import save_plots
from lwlocal.bench.report import HEADERS, cells, write_summary
from lwlocal.bench.run import BenchRun, run_bench, summarize
from lwlocal.chat import LocalChat
from lwlocal.console_progress import TaskProgress
from lwlocal.convert.run import OUTTYPES
from lwlocal.convert.run import convert as convert_checkpoint
from lwlocal.engine import Sampling
from lwlocal.errors import LwlocalError, LwlocalWarning
from lwlocal.llama_build import GPU_BUILD_HINT, llama_build
from lwlocal.model_info import inspect_path
from lwlocal.models import (
    CHECKPOINT_FILES,
    DEFAULT_MODEL,
    catalog,
    check_gguf,
    file_quant,
    gguf_metadata,
    looks_like_repo_id,
    pull,
    resolve,
)
from lwlocal.paths import bench_dir, jobs_dir
from lwlocal.plan_formats import llama_server_args, ollama_modelfile
from lwlocal.planner import GPU_RUNTIME_DEFAULT, KV_BYTES, Plan
from lwlocal.quant.calibration import HELDOUT, read_text
from lwlocal.quant.collect import collect
from lwlocal.quant.gptq import GptqRequest, quantize_gptq
from lwlocal.quant.gptq import check_request as check_gptq
from lwlocal.quant.imatrix_file import save
from lwlocal.quant.quality import evaluate
from lwlocal.quant.quantize import QuantizeResult, check_request, convert_and_quantize, quantize
from lwlocal.remote import Server
from lwlocal.write.export import FORMATS, export
from lwlocal.write.jobs import (
    BACKENDS,
    MODES,
    JobSettings,
    Session,
    check_settings,
    model_plan,
    resume_session,
)
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
        table.add_row(str(i), escape(s.title), escape(s.main_point), str(s.words))
    out.print(table)


def _finish(result: JobResult, output: Path | None, as_json: bool, document: str) -> None:
    if output is not None:
        atomic_write(output, document)
    if as_json:
        click.echo(json.dumps(result.as_dict(), ensure_ascii=False))
        return
    if output is None:
        click.echo(document)
    d = result.as_dict()
    click.echo(
        f"job {result.job}: {d['words']} words in {len(result.sections)} sections "
        f"({d['planned_words']} planned), {d['generated_tokens']} tokens at "
        f"{d['decode_tokens_per_s']} tok/s; prompt tokens evaluated / context = "
        f"{d['prompt_to_context']}" + (f"; saved {output}" if output else ""), err=True
    )


def _run(session: Session, job: Job, outline: Outline | None, output: Path | None,
         as_json: bool) -> None:
    try:
        with TaskProgress(err) as progress:
            result = session.run(job, outline, progress=progress)
    except KeyboardInterrupt:
        err.print(f"[yellow]interrupted[/]: job {job.id} is kept; go on with "
                  f"`lwlocal resume {job.id}`")
        sys.exit(130)
    _finish(result, output, as_json, Path(result.document).read_text(encoding="utf-8"))


def memory_options(command: Callable[..., None]) -> Callable[..., None]:
    """--ctx, --kv-type, --flash-attn, --ngl, --n-batch: fix what the planner would choose."""
    options = (
        click.option("--ctx", type=int, help="Context size in tokens (default: the plan's)."),
        click.option("--kv-type", type=click.Choice(list(KV_BYTES)), help="KV cache type."),
        click.option("--flash-attn", type=click.Choice(["on", "off"]), help="Flash attention."),
        click.option("--ngl", type=int, help="Layers to offload to the GPU."),
        click.option("--n-batch", type=int, help="Batch (and micro-batch) size."),
    )
    for option in reversed(options):
        command = option(command)
    return command


def server_options(command: Callable[..., None]) -> Callable[..., None]:
    """--backend, --base-url, --api-key, --server-model, --timeout, --retries: where to write."""
    options = (
        click.option("--backend", type=click.Choice(BACKENDS), default=None,
                     help="local (llama.cpp here, the default) or openai (an OpenAI-compatible "
                          "server: llama-server, vLLM, Ollama, lwlocal serve)."),
        click.option("--base-url", help="The server's API root, e.g. http://127.0.0.1:8080/v1."),
        click.option("--api-key", help="The server's API key (default: $LWLOCAL_API_KEY or "
                                       "$OPENAI_API_KEY; never saved in the journal)."),
        click.option("--server-model", help="The server's model name (default: the first it "
                                            "lists)."),
        click.option("--timeout", type=float, default=Server.timeout, show_default=True,
                     help="Seconds to wait for the server's next byte before retrying."),
        click.option("--retries", type=int, default=Server.retries, show_default=True,
                     help="Tries after the first on connection errors, 429, 5xx and broken "
                          "streams (exponential backoff with jitter)."),
    )
    for option in reversed(options):
        command = option(command)
    return command


def _server(backend: str | None, base_url: str | None, api_key: str | None,
            server_model: str | None, timeout: float, retries: int,
            n_ctx: int | None = None) -> Server | None:
    """The server to write on, or None for the local backend."""
    if backend != "openai":
        if base_url or server_model:
            raise LwlocalError("--base-url and --server-model need --backend openai")
        return None
    if not base_url:
        raise LwlocalError("--backend openai needs --base-url (e.g. http://127.0.0.1:8080/v1)")
    if timeout <= 0 or retries < 0:
        raise LwlocalError("--timeout must be positive and --retries at least 0")
    return Server(base_url, api_key, server_model, n_ctx, timeout, retries)


def _backend_settings(server: Server | None) -> dict[str, Any]:
    """JobSettings fields for where the job runs."""
    if server is None:
        return {}
    return {"backend": "openai", "base_url": server.base_url, "server_model": server.model}


def _memory_settings(ctx: int | None, kv_type: str | None, flash_attn: str | None,
                     ngl: int | None, n_batch: int | None) -> dict[str, Any]:
    """The memory options as JobSettings fields (None: the planner chooses)."""
    return {"n_ctx": ctx, "kv_type": kv_type,
            "flash_attn": None if flash_attn is None else flash_attn == "on",
            "n_gpu_layers": ngl, "n_batch": n_batch}


def _gib_option(value: str | None, name: str) -> int | None:
    """A ``--ram``/``--vram`` value in GiB as bytes, or a one-line error."""
    if value is None:
        return None
    try:
        gib = float(value)
    except ValueError:
        gib = math.nan
    if not math.isfinite(gib) or gib < 0 or gib > 1e6 or (name == "--ram" and gib == 0):
        raise LwlocalError(f"{name} {value}: not a sensible amount of memory in GiB")
    return int(gib * 2**30)


@click.group()
@click.version_option(package_name="lwlocal")
def cli() -> None:
    """Ultra-long text generation with LongWriter models on llama.cpp, offline."""


@cli.command()
def models() -> None:
    """List the model cards and the local GGUF files (card files and the models folder)."""
    table = Table()
    for column in ("name", "architecture", "params", "layers", "kv heads", "context",
                   "format", "local file", "quant"):
        table.add_column(column)
    for entry in catalog():
        path, card = entry.path, entry.card
        present = f"{path} ({path.stat().st_size / 2**20:.0f} MiB)" if path else "-"
        quant = file_quant(path) if path else "-"
        if card:
            table.add_row(card.name, card.architecture, f"{card.n_params / 1e9:.2f}B",
                          str(card.n_layers), str(card.n_kv_heads), str(card.context_length),
                          card.prompt_format, present, quant)
        else:
            table.add_row(entry.name, "", "", "", "", "", "", present, quant)
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
@memory_options
@click.option("--sections", type=int, help="Exact number of sections to plan.")
@click.option("--temperature", type=float, default=Sampling.temperature, show_default=True)
@click.option("--top-p", type=float, default=Sampling.top_p, show_default=True)
@click.option("--repeat-penalty", type=float, default=Sampling.repeat_penalty, show_default=True)
@click.option("--seed", type=int, default=Sampling.seed, show_default=True)
@click.option("--threads", type=int, help="CPU threads (default: physical cores).")
@server_options
def write(prompt: str | None, words: int | None, model: str | None, mode: str, plan_only: bool,
          outline_file: Path | None, output: Path | None, as_json: bool,
          sections: int | None, temperature: float, top_p: float, repeat_penalty: float,
          seed: int, threads: int | None, backend: str | None, base_url: str | None,
          api_key: str | None, server_model: str | None, timeout: float, retries: int,
          **memory: Any) -> None:
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
    server = _server(backend, base_url, api_key, server_model, timeout, retries, memory["ctx"])
    if server is not None and model:
        raise LwlocalError("--model names a local model; on a server use --server-model")
    sampling = Sampling(temperature=temperature, top_p=top_p, repeat_penalty=repeat_penalty,
                        seed=seed)
    settings = JobSettings(prompt=prompt, words=words, model=model, mode=mode,
                           sections=sections, threads=threads, sampling=sampling,
                           **_memory_settings(**memory), **_backend_settings(server))
    session = Session(settings, server)
    if plan_only:
        with TaskProgress(err) as progress:
            outline = session.plan(progress)
        _print_outline(outline, as_json)
        return
    _run(session, session.new_job(), outline, output, as_json)


@cli.command()
@click.argument("job")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Save the document here.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option("--model", help="Go on with this local model (card or GGUF) instead.")
@server_options
def resume(job: str, output: Path | None, as_json: bool, model: str | None,
           backend: str | None, base_url: str | None, api_key: str | None,
           server_model: str | None, timeout: float, retries: int) -> None:
    """Go on with JOB (its id, id prefix or folder) from its first unfinished section, where
    it ran or elsewhere: a job started on a server can go on locally and the reverse."""
    found = Job.open(job, jobs_dir())
    _check_output(output)
    backend = backend or ("local" if model else None)
    if backend is None and found.meta.get("backend") == "openai":  # where it ran
        backend, base_url = "openai", base_url or found.meta.get("base_url")
        server_model = server_model or found.meta.get("server_model")
    same_server = base_url == found.meta.get("base_url")
    server = _server(backend, base_url, api_key, server_model, timeout, retries,
                     found.meta.get("n_ctx") if same_server else None)
    _run(resume_session(found, backend, server, model), found, None, output, as_json)


@cli.command()
@click.option("--model", "models", multiple=True,
              help="Card name or GGUF path (repeatable; default: the default model).")
@click.option("--mode", "modes", multiple=True, type=click.Choice(MODES),
              help="agentwrite and/or direct (repeatable; default: both).")
@click.option("--prompts", type=click.Path(path_type=Path),
              help="JSON lines with id, prompt, type, length (default: lwlocal's own set).")
@click.option("--judge", help="A model (card or GGUF) that scores quality (S_q).")
@click.option("--limit", type=int, help="Only the first N prompts.")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Results folder (default: bench/ in lwlocal's data folder).")
@click.option("--hold-length", is_flag=True,
              help="Hold sections to their word budgets as `write` does (default: the model "
                   "decides, as LongBench-Write measures).")
@click.option("--threads", type=int, help="CPU threads (default: physical cores).")
@click.option("--concurrency", type=int, default=1, show_default=True,
              help="Items written at once (more than 1 needs --backend openai).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@server_options
def bench(models: tuple[str, ...], modes: tuple[str, ...], prompts: Path | None,
          judge: str | None, limit: int | None, output: Path | None, hold_length: bool,
          threads: int | None, concurrency: int, as_json: bool, backend: str | None,
          base_url: str | None, api_key: str | None, server_model: str | None,
          timeout: float, retries: int) -> None:
    """LongBench-Write style evaluation: length score S_l (and quality S_q with --judge),
    throughput and plots; resumable (finished items are skipped)."""
    if limit is not None and limit <= 0:
        raise LwlocalError(f"--limit {limit}: must be a positive number of prompts")
    out = output or bench_dir()
    server = _server(backend, base_url, api_key, server_model, timeout, retries)
    if server is not None and models:
        raise LwlocalError("--model names local models; on a server use --server-model")
    names = ([server.model or "server"] if server is not None
             else list(models) or [DEFAULT_MODEL])
    run = BenchRun(load_items(prompts)[:limit], names, list(modes) or list(MODES), out, judge,
                   hold_length, threads, server=server, concurrency=concurrency)
    with TaskProgress(err) as progress:
        results = run_bench(run, progress)
    summary = summarize(results)
    write_summary(out, summary)
    try:
        save_plots(results, summary, out / "plots")
    except LwlocalError as exc:
        click.echo(f"warning: {exc}", err=True)
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False))
        return
    table = Table()
    for header in HEADERS:
        table.add_column(header)
    for row in summary:
        table.add_row(*(escape(c) for c in cells(row)))
    out_console = Console(highlight=False, width=200)
    out_console.print(table)
    click.echo(f"results, summary and plots in {out}", err=True)


@cli.command()
@click.argument("prompts", type=click.Path(path_type=Path))
@click.option("--concurrency", type=int, default=1, show_default=True,
              help="Jobs written at once (more than 1 needs --backend openai).")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Folder for the jobs and report.json.")
@click.option("--mode", type=click.Choice(MODES), default="agentwrite", show_default=True)
@click.option("--model", help="Card name or GGUF path (local backend).")
@click.option("--temperature", type=float, default=Sampling.temperature, show_default=True)
@click.option("--seed", type=int, default=Sampling.seed, show_default=True)
@click.option("--threads", type=int, help="CPU threads (local backend).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@server_options
def batch(prompts: Path, concurrency: int, output: Path, mode: str, model: str | None,
          temperature: float, seed: int, threads: int | None, as_json: bool,
          backend: str | None, base_url: str | None, api_key: str | None,
          server_model: str | None, timeout: float, retries: int) -> None:
    """Write every prompt of PROMPTS (JSON lines with id, prompt, length in words), at most
    --concurrency at a time, each a job with its journal; a rerun skips finished jobs and
    resumes interrupted ones. Reports jobs per hour, tokens/s and per-job latency."""
    server = _server(backend, base_url, api_key, server_model, timeout, retries)
    items = load_items(prompts)
    template = JobSettings(prompt="", words=1, model=model, mode=mode, threads=threads,
                           sampling=Sampling(temperature=temperature, seed=seed),
                           **_backend_settings(server))
    try:
        with TaskProgress(err) as progress:
            report = run_batch(items, template, output, concurrency, server, progress)
    except KeyboardInterrupt:
        err.print(f"[yellow]interrupted[/]: the jobs are kept in {output}; run the same "
                  "command to go on")
        sys.exit(130)
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False))
        return
    latency = report["latency_seconds"]
    out.print(f"{report['jobs']} jobs ({report['errors']} failed, {report['skipped']} done "
              f"before) at concurrency {report['concurrency']} in {report['wall_seconds']} s: "
              f"{report['jobs_per_hour']} jobs/hour, {report['tokens_per_s']} tokens/s, "
              f"latency mean {latency['mean']} s, p95 {latency['p95']} s")
    for row in report["results"]:
        if row["error"]:
            err.print(f"[red]{row['id']}[/]: {escape(row['error'])}")
    click.echo(f"report in {output / 'report.json'}", err=True)


@cli.command()
@click.argument("model", required=False)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8080, show_default=True)
@click.option("--words", type=int, default=10000, show_default=True,
              help="The longest document to plan the context for.")
@click.option("--mode", type=click.Choice(MODES), default="agentwrite", show_default=True,
              help="The writing mode to plan the context for.")
@click.option("--name", help="The model's name in the API (default: MODEL as given).")
@click.option("--threads", type=int, help="CPU threads (default: physical cores).")
@memory_options
def serve(model: str | None, host: str, port: int, words: int, mode: str, name: str | None,
          threads: int | None, **memory: Any) -> None:
    """Serve MODEL (card or GGUF; default: the default model) as an OpenAI-compatible chat
    API with the planner's settings, so several writers and other tools share one model."""
    import uvicorn

    from lwlocal.serve import ModelServer, check_port

    check_port(host, port)
    settings = JobSettings(prompt="", words=words, model=model, mode=mode, threads=threads,
                           **_memory_settings(**memory))
    session = Session(settings)
    assert session.memory_plan is not None and isinstance(session.chat, LocalChat)
    name = name or model or DEFAULT_MODEL
    chosen = session.memory_plan.settings
    err.print(f"serving {escape(name)} at http://{host}:{port}/v1 - context {chosen.n_ctx}, "
              f"KV {chosen.kv_type}, flash attention {'on' if chosen.flash_attn else 'off'}, "
              f"{chosen.n_gpu_layers} GPU layers; Ctrl-C stops")
    uvicorn.run(ModelServer(session.chat, name).app(), host=host, port=port,
                log_level="warning")


@cli.command("export")
@click.argument("job")
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)), default="md",
              show_default=True)
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="The file to write.")
def export_command(job: str, fmt: str, output: Path) -> None:
    """Save a job's document (what is written so far, if unfinished) as Markdown, plain text
    or HTML."""
    _check_output(output)
    path = export(Job.open(job, jobs_dir()), fmt, output)
    click.echo(f"{path}: {FORMATS[fmt]}", err=True)


@cli.command()
def tui() -> None:
    """The terminal app: model and memory plan, compose, outline editor, writing, library."""
    from lwlocal.tui.app import LwlocalApp

    LwlocalApp().run()


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
            table.add_row(*(escape(str(v)) for v in row.values()))
    if not as_json:
        out.print(table)


def _print_plan(plan: Plan) -> None:
    s, m = plan.settings, plan.memory
    sizes = "sizes from the GGUF" if plan.exact else "sizes estimated from the card"
    out.print(f"[bold]{plan.model}[/] ({sizes}): "
              + ("[green]fits[/]" if plan.fits else "[red]does not fit[/]"))
    for label, used, budget in (("RAM", m.ram_bytes, plan.ram_budget),
                                ("VRAM", m.vram_bytes, plan.vram_budget)):
        share = min(1.0, used / budget) if budget else (1.0 if used else 0.0)
        bar = "█" * round(share * 30) + "·" * (30 - round(share * 30))
        note = (f" (GPU runtime {plan.gpu_runtime / 2**20:.0f} MiB, "
                + ("measured here)" if plan.gpu_runtime_measured else "default)")
                if label == "VRAM" and used else "")
        out.print(f"  {label:<5} {bar} {used / 2**30:6.2f} of {budget / 2**30:.2f} GiB{note}")
    out.print(f"  n_ctx {s.n_ctx}, KV {s.kv_type}, flash attention "
              f"{'on' if s.flash_attn else 'off'}, GPU layers {s.n_gpu_layers}, "
              f"batch {s.n_batch}, threads {s.threads}")
    for line in plan.reasons:
        out.print(f"  - {line}")
    for line in plan.suggestions:
        out.print(f"  [yellow]> {line}[/]")


@cli.command("plan")
@click.argument("model", default=DEFAULT_MODEL)
@click.option("--words", type=int, required=True, help="Target length in words.")
@click.option("--mode", type=click.Choice(MODES), default="agentwrite", show_default=True)
@click.option("--quant", help="Quant to plan a card for before download (default Q4_K_M).")
@click.option("--lang", type=click.Choice(["en", "zh"]), default="en", show_default=True,
              help="Language of the text: words (en) or characters (zh) to tokens.")
@click.option("--sections", type=int, help="Number of AgentWrite sections.")
@click.option("--ram", help="Plan for this much free RAM, in GiB (default: this machine's).")
@click.option("--vram", help="Plan for this much free VRAM, in GiB (default: this machine's).")
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "llama-server", "ollama"]),
              default="text", show_default=True)
@click.option("--measure", is_flag=True, help="Also run the plan and measure its peak RSS.")
@memory_options
def plan_command(model: str, words: int, mode: str, quant: str | None, lang: str,
                 sections: int | None, ram: str | None, vram: str | None, as_json: bool,
                 fmt: str, measure: bool, **memory: Any) -> None:
    """How MODEL (card or GGUF) fits this machine for a job of --words: settings and memory."""
    settings = JobSettings(prompt="", words=words, mode=mode, sections=sections,
                           **_memory_settings(**memory))
    check_settings(settings)
    ram_bytes, vram_bytes = _gib_option(ram, "--ram"), _gib_option(vram, "--vram")
    chosen = model_plan(model, settings, quant=quant, lang=lang, ram=ram_bytes, vram=vram_bytes)
    plan, path, fmt_of_model, tokenizer = (chosen.plan, chosen.path, chosen.format,
                                           chosen.tokenizer)
    for warning in plan.warnings:
        warnings.warn(warning, LwlocalWarning, stacklevel=1)
    fmt = "json" if as_json else fmt
    if fmt in ("llama-server", "ollama") and not plan.fits:
        raise LwlocalError(f"{plan.model}: {'; try '.join(plan.suggestions[:2])}")
    if fmt == "json":
        data = plan.as_dict()
        if measure:
            data["measured_ram_bytes"] = _measure(tokenizer, plan)
        click.echo(json.dumps(data))
    elif fmt == "llama-server":
        click.echo(llama_server_args(plan, path))
    elif fmt == "ollama":
        click.echo(ollama_modelfile(plan, path, fmt_of_model), nl=False)
    else:
        _print_plan(plan)
        if measure:
            measured = _measure(tokenizer, plan)
            error = plan.memory.ram_bytes / measured - 1
            out.print(f"  measured peak RSS {measured / 2**30:.3f} GiB "
                      f"(prediction {error:+.1%})")
    if not plan.fits:
        sys.exit(1)


def _measure(path: Path | None, plan: Plan) -> int:
    """Peak RSS of running the plan on this machine (CPU)."""
    from lwlocal.memory_probe import measure

    if path is None:
        raise LwlocalError("--measure needs a local GGUF file")
    return measure(path, plan.settings)


@cli.command()
@click.argument("src")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="The GGUF file to write.")
@click.option("--outtype",
              help=f"{', '.join(OUTTYPES)} (written directly), or a quant type such as Q4_K_M "
                   "(through a temporary f16 GGUF). Default: f16 for f16/f32 sources, bf16 for "
                   "bf16 sources.")
@click.option("--imatrix", type=click.Path(path_type=Path),
              help="Importance matrix for a quant type (from `lwlocal imatrix`).")
@click.option("--threads", type=int, help="Quantizer threads (default: physical cores).")
def convert(src: str, output: Path, outtype: str | None, imatrix: Path | None,
            threads: int | None) -> None:
    """Convert a Hugging Face checkpoint (a local folder or a hub id, pulled first) to a GGUF
    file (no torch needed), optionally quantized."""
    _check_output(output)
    direct = outtype is None or outtype.lower() in OUTTYPES
    if direct and imatrix is not None:
        raise LwlocalError("--imatrix needs a quant type as --outtype (e.g. Q4_K_M)")
    if not direct:
        check_request(outtype, imatrix, Path(src))
    folder = pull(src, CHECKPOINT_FILES) if looks_like_repo_id(src) else Path(src)
    with TaskProgress(err) as progress:
        if direct:
            result = convert_checkpoint(folder, output, outtype and outtype.lower(), progress)
        else:
            result, quantized = convert_and_quantize(folder, output, outtype, imatrix=imatrix,
                                                     n_threads=threads, progress=progress)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if not direct:
        _print_quantized(quantized)
        return
    how = "as asked" if outtype else f"the default for {result.source_dtype} weights"
    click.echo(f"{result.path}: {result.architecture}, {result.outtype} ({how}), "
               f"{result.tensors} tensors, {result.bytes / 2**20:.1f} MiB of tensor data", err=True)


def _print_quantized(result: QuantizeResult) -> None:
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    with_imatrix = (f", importance matrix of {result.imatrix_entries} tensors"
                    if result.imatrix_entries else "")
    click.echo(f"{result.path}: {result.type}, {result.bytes / 2**20:.1f} MiB, "
               f"{result.bits_per_weight:.2f} bits per weight{with_imatrix}, "
               f"{result.seconds:.1f} s", err=True)


@cli.command("quantize")
@click.argument("src", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="The quantized GGUF to write.")
@click.option("--type", "qtype", required=True,
              help="llama-quantize's type name: Q8_0, Q6_K, Q5_K_M, Q4_K_M, Q3_K_M, Q2_K, "
                   "IQ4_XS, IQ3_M, IQ2_XS, ... (an unknown name lists them all).")
@click.option("--imatrix", type=click.Path(path_type=Path),
              help="Importance matrix (GGUF or legacy .dat); IQ1/IQ2 types need one.")
@click.option("--threads", type=int, help="Quantizer threads (default: physical cores).")
def quantize_command(src: Path, output: Path, qtype: str, imatrix: Path | None,
                     threads: int | None) -> None:
    """Quantize a GGUF file with llama.cpp's own quantizer."""
    _check_output(output)
    with TaskProgress(err) as progress:
        result = quantize(src, output, qtype, imatrix=imatrix, n_threads=threads,
                          progress=progress)
    _print_quantized(result)


@cli.command("imatrix")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--text", "text_file", type=click.Path(path_type=Path),
              help="Calibration text (default: the long-form essays and chapters shipped with "
                   "lwlocal).")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="The importance matrix to write (llama-imatrix's GGUF format).")
@click.option("--ctx", type=int, default=512, show_default=True, help="Tokens per chunk.")
@click.option("--chunks", type=int, help="Evaluate only the first N chunks.")
@click.option("--threads", type=int, help="CPU threads (default: physical cores).")
def imatrix_command(model: Path, text_file: Path | None, output: Path, ctx: int,
                    chunks: int | None, threads: int | None) -> None:
    """Compute an importance matrix for quantizing MODEL, from its activations on a text."""
    _check_output(output)
    check_gguf(model)
    text, label = read_text(text_file, "longform")
    with TaskProgress(err) as progress:
        matrix = collect(model, text, n_ctx=ctx, chunks=chunks, dataset=label,
                         n_threads=threads, progress=progress)
    save(matrix, output, str(gguf_metadata(model).get("general.architecture", "")))
    click.echo(f"{output}: {len(matrix.sums)} weight matrices, {matrix.chunk_count} chunks of "
               f"{ctx} tokens from {label}", err=True)


@cli.command("quantize-gptq")
@click.argument("src")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="The GPTQ checkpoint folder to write.")
@click.option("--bits", type=int, default=GptqRequest.bits, show_default=True,
              help="2, 3, 4 or 8.")
@click.option("--group-size", type=int, default=GptqRequest.group_size, show_default=True,
              help="Columns per quantization group (-1: one group per row).")
@click.option("--desc-act", is_flag=True, help="Quantize columns in order of activation size.")
@click.option("--sym/--asym", default=True, show_default=True,
              help="Symmetric groups (what vLLM's Marlin kernels need) or with zero points.")
@click.option("--text", "text_file", type=click.Path(path_type=Path),
              help="Calibration text (default: the long-form text shipped with lwlocal, as "
                   "for the GGUF importance matrix).")
@click.option("--samples", type=int, default=GptqRequest.samples, show_default=True,
              help="Calibration chunks.")
@click.option("--seq-len", type=int, default=GptqRequest.seq_len, show_default=True,
              help="Tokens per calibration chunk.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def quantize_gptq_command(src: str, output: Path, bits: int, group_size: int, desc_act: bool,
                          sym: bool, text_file: Path | None, samples: int, seq_len: int,
                          as_json: bool) -> None:
    """Quantize the HF checkpoint SRC (a folder or hub id) to a GPTQ checkpoint for GPUs
    (transformers, vLLM, ExLlama); on the CPU here, on a GPU when torch sees one."""
    folder = pull(src, CHECKPOINT_FILES) if looks_like_repo_id(src) else Path(src)
    request = GptqRequest(folder, output, bits, group_size, desc_act, sym, samples, seq_len)
    check_gptq(request)
    text, label = read_text(text_file, "longform")
    with TaskProgress(err) as progress:
        result = quantize_gptq(request, text, label, progress)
    if as_json:
        click.echo(json.dumps(result.as_dict()))
        return
    click.echo(f"{result.out}: GPTQ {result.bits}-bit, group size {result.group_size}, "
               f"{'symmetric' if result.sym else 'with zero points'}, "
               f"{result.size_bytes / 2**20:.1f} MiB, calibrated on {result.samples} chunks of "
               f"{result.seq_len} tokens from {label}, {result.seconds:.1f} s on {result.device}",
               err=True)


@cli.command("eval-quant")
@click.argument("base", type=click.Path(path_type=Path))
@click.argument("quant", type=click.Path(path_type=Path))
@click.option("--text", "text_file", type=click.Path(path_type=Path),
              help="Evaluation text (default: the held-out long-form text shipped with lwlocal).")
@click.option("--ctx", type=int, default=512, show_default=True, help="Tokens per chunk.")
@click.option("--chunks", type=int, help="Evaluate only the first N chunks.")
@click.option("--threads", type=int, help="CPU threads (default: physical cores).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def eval_quant(base: Path, quant: Path, text_file: Path | None, ctx: int, chunks: int | None,
               threads: int | None, as_json: bool) -> None:
    """Quality of QUANT against BASE: perplexity of both, KL divergence, top-1 agreement.
    GGUF files, or HF checkpoint folders (a GPTQ quant against its source)."""
    text, label = read_text(text_file, HELDOUT)
    with TaskProgress(err) as progress:
        report = evaluate(base, quant, text, n_ctx=ctx, chunks=chunks, label=label,
                          n_threads=threads, progress=progress)
    if as_json:
        click.echo(json.dumps(report.as_dict()))
        return
    click.echo(f"{report.chunks} chunks of {report.ctx} tokens from {label}, "
               f"{report.tokens} tokens scored")
    click.echo(f"PPL base    {report.ppl_base:.4f}")
    click.echo(f"PPL quant   {report.ppl_quant:.4f}  (ratio {report.ppl_ratio:.4f})")
    click.echo(f"KLD         mean {report.kld_mean:.6f}  median {report.kld_median:.6f}  "
               f"99% {report.kld_p99:.6f}  max {report.kld_max:.6f}")
    click.echo(f"Top-1 agreement {100 * report.top1_agreement:.2f}%")


@cli.command("pull")
@click.argument("repo_id")
@click.option("--include", multiple=True, help="Only files matching this pattern (repeatable).")
def pull_command(repo_id: str, include: tuple[str, ...]) -> None:
    """Download a Hugging Face hub repository into the local cache; prints its folder."""
    click.echo(pull(repo_id, list(include) or None))


@cli.command("inspect")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def inspect_command(path: Path, as_json: bool) -> None:
    """What PATH holds: a GGUF's metadata and tensor types, or an HF checkpoint folder's
    architecture, size and what convert would do."""
    info = inspect_path(path)
    if as_json:
        click.echo(json.dumps(info, ensure_ascii=False))
        return
    for key, value in info.items():
        if key == "chat_template" and value:
            value = value.replace("\n", "\\n")
            value = value if len(value) <= 200 else value[:200] + "…"
        click.echo(f"{key:<28} {value}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--measure", is_flag=True,
              help="Measure the GPU memory the CUDA runtime itself takes on this machine (about "
                   "a second; kept for this GPU, driver and build, then used by every plan).")
def hw(as_json: bool, measure: bool) -> None:
    """What this machine has: RAM (within any cgroup limit), GPUs, cores, and what the installed
    llama.cpp can use of them."""
    machine = hardware.detect()
    if measure:
        from lwlocal.gpu_runtime import measure as measure_runtime

        if not (machine.gpu and machine.offload and not machine.unified):
            raise LwlocalError("--measure needs an NVIDIA GPU and a llama.cpp build that "
                               f"offloads ({GPU_BUILD_HINT})")
        runtime = measure_runtime(resolve(DEFAULT_MODEL).path, machine.gpu)
        machine = replace(machine, gpu_runtime=runtime)
    build = llama_build()
    if as_json:
        click.echo(json.dumps(machine.as_dict() | {"llama_cpp": asdict(build)}))
        return
    gib = 2**30
    out.print(f"RAM   {machine.ram_available / gib:.2f} GiB available of "
              f"{machine.ram_total / gib:.2f} GiB")
    gpu = (f"{machine.gpu}: {machine.vram_free / gib:.2f} GiB free of "
           f"{machine.vram_total / gib:.2f} GiB" + (" (unified memory)" if machine.unified else "")
           + (f" (first of {machine.gpus}; lwlocal uses it alone)" if machine.gpus > 1 else "")
           if machine.gpu else "none")
    out.print(f"GPU   {escape(gpu)}")
    out.print(f"CPU   {machine.cores} physical cores, {machine.threads} threads")
    offload = ("offloads layers to the GPU" if build.offload else
               f"CPU-only: cannot offload layers; {GPU_BUILD_HINT}")
    out.print(f"llama.cpp  llama-cpp-python {build.version}, backends "
              f"{', '.join(build.backends)}: {escape(offload)}")
    for device in build.devices:
        out.print(f"  {escape(device)}")
    if machine.gpu and build.offload:
        runtime = machine.gpu_runtime
        out.print("GPU runtime " + (f"{runtime / 2**20:.0f} MiB, measured here" if runtime
                                    is not None else
                                    f"not measured here (plans use {GPU_RUNTIME_DEFAULT // 2**20} "
                                    "MiB); lwlocal hw --measure"))


def _show_warning(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    """lwlocal's own warnings as one line each; other libraries' as Python prints them."""
    if issubclass(category, LwlocalWarning):
        click.echo(f"lwlocal: warning: {message}", err=True)
    else:
        show_python_warning(message, category, *_, **__)


def main() -> None:
    """Entry point: run the command; a bad input ends with one line on stderr and exit 1."""
    warnings.showwarning = _show_warning
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
