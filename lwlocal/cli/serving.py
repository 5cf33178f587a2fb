"""Serving and evaluation commands: serve, bench."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from lwlocal.bench.items import load_items
from lwlocal.bench.plots import save_plots
from lwlocal.bench.report import HEADERS, SUMMARY_FILES, cells, write_summary
from lwlocal.bench.run import RESULTS, BenchRun, run_bench, summarize
from lwlocal.cli.options import (
    MemoryOptions,
    ServerOptions,
    SpeculatingCommand,
    Speculation,
    memory_options,
    said_resolved,
    server_options,
    speculate_option,
)
from lwlocal.cli.progress import TaskProgress
from lwlocal.cli.render import err, print_table
from lwlocal.models.catalogue import DEFAULT_MODEL
from lwlocal.runtime.chat import LocalChat
from lwlocal.util.cpu import check_threads
from lwlocal.util.destination import check_folder, check_output_folder
from lwlocal.util.errors import LwlocalError
from lwlocal.util.overwrite import refuse_input_as_output
from lwlocal.util.paths import bench_dir
from lwlocal.write.jobs import Session
from lwlocal.write.settings import MODES, JobSettings


@click.command(cls=SpeculatingCommand)
@click.argument("model", required=False)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8080, show_default=True)
@click.option("--words", type=int, default=10000, show_default=True,
              help="The longest document to plan the context for.")
@click.option("--mode", type=click.Choice(MODES), default="agentwrite", show_default=True,
              help="The writing mode to plan the context for.")
@click.option("--name", help="The model's name in the API (default: MODEL as given).")
@click.option("--threads", type=int, help="CPU threads (default: physical cores).")
@click.option("--api-key", envvar="LWLOCAL_API_KEY",
              help="Answer only requests with `Authorization: Bearer KEY` (/health excepted; "
                   "default: $LWLOCAL_API_KEY).")
@speculate_option("off")
@memory_options
def serve(model: str | None, host: str, port: int, words: int, mode: str, name: str | None,
          threads: int | None, api_key: str | None, speculate: Speculation,
          memory: MemoryOptions) -> None:
    """Serve MODEL (card or GGUF; default: the default model) as an OpenAI-compatible chat
    API with the planner's settings, so several writers and other tools share one model."""
    import uvicorn

    from lwlocal.openai.listen import bind, is_loopback, log_config
    from lwlocal.openai.server import ModelServer

    if api_key is not None and not api_key.strip():
        raise LwlocalError("--api-key is empty")
    sock = bind(host, port)
    if api_key is None and not is_loopback(host):
        click.echo(f"warning: --host {host} is reachable beyond this machine and there is no "
                   f"--api-key: anyone who reaches it can use the model", err=True)
    speculate = said_resolved(speculate, model, threads, memory=memory)
    settings = JobSettings(prompt="", words=words, model=model, mode=mode, threads=threads,
                           **speculate.settings(), **memory.settings())
    session = Session(settings)
    assert session.memory_plan is not None and isinstance(session.chat, LocalChat)
    name = name or model or DEFAULT_MODEL
    chosen = session.memory_plan.settings
    err.print(f"serving {escape(name)} at http://{host}:{port}/v1 - context {chosen.n_ctx}, "
              f"KV {chosen.kv_type}, flash attention {'on' if chosen.flash_attn else 'off'}, "
              f"{chosen.n_gpu_layers} GPU layers, speculation {speculate}; Ctrl-C stops")
    app = ModelServer(session.chat, name, api_key=api_key).app()
    config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                            log_config=log_config())
    uvicorn.Server(config).run(sockets=[sock])


@click.command(cls=SpeculatingCommand)
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
@click.option("--hold-length", "given_length", is_flag=True,
              help="Give each prompt's required length as `write --words` would (default: "
                   "the length is read from the instruction, as `write` does without --words).")
@click.option("--threads", type=int, help="CPU threads (default: physical cores).")
@click.option("--concurrency", type=int, default=1, show_default=True,
              help="Items written at once (more than 1 needs --backend openai).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@speculate_option("off")
@server_options
def bench(models: tuple[str, ...], modes: tuple[str, ...], prompts: Path | None,
          judge: str | None, limit: int | None, output: Path | None, given_length: bool,
          threads: int | None, concurrency: int, as_json: bool, speculate: Speculation,
          server: ServerOptions) -> None:
    """LongBench-Write style evaluation: length score S_l (and quality S_q with --judge),
    throughput and plots; resumable (finished items are skipped)."""
    if limit is not None and limit <= 0:
        raise LwlocalError(f"--limit {limit}: must be a positive number of prompts")
    check_threads(threads)
    out = output or bench_dir()
    if output is None:
        check_folder(out)  # lwlocal's own folder: made with its parents
    else:
        check_output_folder(output)
    for name in (RESULTS, *SUMMARY_FILES):
        refuse_input_as_output(out / name, {"prompts": prompts})
    remote = server.server()
    if remote is not None and models:
        raise LwlocalError("--model names local models; on a server use --server-model")
    names = ([remote.model or "server"] if remote is not None
             else list(models) or [DEFAULT_MODEL])
    decoding = {name: said_resolved(speculate, None if remote else name, threads,
                                    remote=remote is not None, named=len(names) > 1).mode
                or "off" for name in names}
    run = BenchRun(load_items(prompts)[:limit], names, list(modes) or list(MODES), out, judge,
                   given_length, threads, server=remote, concurrency=concurrency,
                   speculate=decoding, draft_model=speculate.draft_model)
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
    print_table(tuple(HEADERS), [tuple(cells(row)) for row in summary],
                console=Console(highlight=False, width=200))
    click.echo(f"results, summary and plots in {out}", err=True)
