"""Dataset commands: build a long-output SFT set in LongWriter-6k's layout from a file of
instructions, describe it, export it."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from lwlocal.cli.batching import BatchOptions, batch_options, keeping_jobs, plan_batch
from lwlocal.cli.options import ServerOptions, grouped, servers_options
from lwlocal.cli.render import err, out
from lwlocal.dataset.build import BuildResult, build_dataset
from lwlocal.dataset.export import export_dataset
from lwlocal.dataset.filters import Filters
from lwlocal.dataset.layout import LAYOUTS
from lwlocal.dataset.ledger import DATA, REJECTED
from lwlocal.dataset.plot import save_length_plot, text_histogram
from lwlocal.dataset.stats import dataset_stats
from lwlocal.util.destination import check_destination
from lwlocal.util.errors import LwlocalError
from lwlocal.util.overwrite import refuse_input_as_output
from lwlocal.write.batch import REPORT

PLOT = "length_histogram.png"


@click.group()
def dataset() -> None:
    """Build, describe and export a long-output SFT set in LongWriter-6k's layout."""


def filter_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Adds the filters' thresholds as ``filters: Filters``."""
    d = Filters()
    options = (
        click.option("--min-words", type=int, default=d.min_words, show_default=True,
                     help="Shortest document kept, in words (Chinese characters one each, as "
                          "LongBench-Write counts)."),
        click.option("--max-words", type=int, default=d.max_words, show_default=True,
                     help="Longest document kept."),
        click.option("--same-language/--any-language", default=d.same_language,
                     show_default=True,
                     help="Keep only documents in their instruction's language."),
        click.option("--max-boundary", type=int, default=d.max_boundary, show_default=True,
                     help="Boundary leaks allowed (a section running into the next)."),
        click.option("--max-talk", type=float, default=d.max_talk, show_default=True,
                     help="Share of sentences that may talk about the writing."),
        click.option("--max-repeats", type=float, default=d.max_repeats, show_default=True,
                     help="Share of sentences that may repeat earlier ones (loops)."),
        click.option("--near-duplicate", type=float, default=d.near_duplicate,
                     show_default=True,
                     help="Share of word pairs that makes an instruction a near-duplicate of "
                          "an earlier one."),
    )
    return grouped(command, options, "filters", Filters,
                   ("min_words", "max_words", "same_language", "max_boundary", "max_talk",
                    "max_repeats", "near_duplicate"))


@dataset.command()
@click.argument("prompts", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="The dataset folder: data.jsonl, rejected.jsonl, the jobs, report.json.")
@click.option("--json", "as_json", is_flag=True, help="Print what was decided as JSON.")
@filter_options
@batch_options
@servers_options
def build(prompts: Path, output: Path, as_json: bool, filters: Filters, batch: BatchOptions,
          server: ServerOptions) -> None:
    """Write an AgentWrite document for every instruction of PROMPTS (JSON lines with id,
    prompt, length in words), as `lwlocal batch` does, and keep each that passes the filters
    in OUTPUT/data.jsonl ({"messages": [user, assistant]}), the others in
    OUTPUT/rejected.jsonl with why, as they finish. A rerun goes on where the last stopped."""
    plan = plan_batch(prompts, output, (DATA, REJECTED, REPORT), "agentwrite", batch, server)
    with keeping_jobs(output) as progress:
        result = build_dataset(plan.items, plan.template, output, batch.concurrency, filters,
                               plan.servers, progress)
    if as_json:
        click.echo(json.dumps(vars(result), ensure_ascii=False))
    else:
        out.print(_build_line(result))
        if result.failed:
            err.print(f"[red]failed[/]: {escape(', '.join(result.failed))} (their errors are in "
                      f"{output / REPORT}; run the same command to go on)", soft_wrap=True)
        click.echo(f"examples in {output / DATA}, rejected items in {output / REJECTED}",
                   err=True)
    if result.failed:  # decided ones are kept; the rest waits for a rerun
        sys.exit(1)


def _build_line(result: BuildResult) -> str:
    reasons = ", ".join(f"{reason} {n}" for reason, n in result.rejected.most_common())
    return (f"{result.kept} kept, {sum(result.rejected.values())} rejected"
            f"{f' ({reasons})' if reasons else ''}, {len(result.failed)} failed this run; "
            f"the set holds {result.total_kept} examples ({result.total_rejected} rejected)")


@dataset.command()
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option("--tokenizer", help="Card or GGUF whose tokenizer counts the tokens (default: "
                                  "the default model's).")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path),
              help=f"The histogram's PNG (default: FOLDER/{PLOT}; needs matplotlib).")
def stats(folder: Path, as_json: bool, tokenizer: str | None, plot_path: Path | None) -> None:
    """Describe the dataset FOLDER: examples kept, items rejected by reason, the output-length
    histogram (also drawn as a PNG), languages and tokens."""
    figures = dataset_stats(folder, tokenizer)
    plot_path = plot_path or folder / PLOT
    check_destination(plot_path)
    try:
        figures["plot"] = str(save_length_plot(figures, plot_path))
    except LwlocalError as exc:  # no matplotlib: the figures without the picture
        figures["plot"] = None
        click.echo(f"lwlocal: no plot: {exc}", err=True)
    if as_json:
        click.echo(json.dumps(figures, ensure_ascii=False))
        return
    lengths = figures["output_length"]
    reasons = ", ".join(f"{r} {n}" for r, n in figures["rejected_by_reason"].items())
    languages = ", ".join(f"{lang} {n}" for lang, n in figures["languages"].items())
    out.print(f"{figures['kept']} examples kept, {figures['rejected']} rejected"
              f"{f' ({reasons})' if reasons else ''}")
    out.print(f"output length: {lengths['total']:,} words in all; min {lengths['min']:,}, "
              f"median {lengths['median']:,}, mean {lengths['mean']:,}, max {lengths['max']:,}")
    out.print(f"languages: {languages or '-'}; tokens: {figures['tokens']:,} "
              f"({figures['tokenizer']}'s tokenizer)")
    for line in text_histogram(figures):
        out.print(line)
    if figures["plot"]:
        click.echo(f"histogram in {figures['plot']}", err=True)


@dataset.command("export")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--format", "layout", type=click.Choice(list(LAYOUTS)), default="messages",
              show_default=True, help="messages: LongWriter-6k's own; sharegpt; alpaca.")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="The file: JSON lines, or Parquet when it ends in .parquet (needs the "
                   "datasets library: the dataset extra).")
def export_command(folder: Path, layout: str, output: Path) -> None:
    """Save the examples of the dataset FOLDER for a fine-tuning tool."""
    check_destination(output)
    refuse_input_as_output(output, {"examples": folder / DATA, "rejected items": folder / REJECTED})
    count = export_dataset(folder, layout, output)
    click.echo(f"{output}: {count} examples ({layout})", err=True)
