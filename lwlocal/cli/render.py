"""How the commands print: tables and summary lines on the terminal, JSON when asked."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from lwlocal.cli import option_name
from lwlocal.memory.planner import Plan
from lwlocal.quant.quantize import QuantizeResult
from lwlocal.util.atomic import atomic_write
from lwlocal.util.destination import DestinationError
from lwlocal.util.errors import name_settings
from lwlocal.write.outline import Outline
from lwlocal.write.results import JobResult
from lwlocal.write.review import short_line, summary_line

err = Console(stderr=True)
out = Console(highlight=False, soft_wrap=True)


def print_table(columns: Sequence[str], rows: Sequence[Sequence[str]],
                title: str | None = None, console: Console = out) -> None:
    """``rows`` under ``columns``, every value whole (ids and names are typed back): piped,
    as tab-separated lines for other tools; on a terminal wide enough, a table; on a narrower
    one, each row as its first value followed by the others, named."""
    if not console.is_terminal:
        lines = ([title] if title else []) + ["\t".join(columns)]
        lines += ["\t".join(cell.replace("\t", " ").replace("\n", " ") for cell in row)
                  for row in rows]
        click.echo("\n".join(lines), err=console.stderr)
        return
    widths = [max([len(column), *(len(row[i]) for row in rows)])
              for i, column in enumerate(columns)]
    if sum(widths) + 3 * len(columns) + 1 <= console.width:
        table = Table(title=title, box=box.SIMPLE_HEAD)
        for column in columns:
            table.add_column(column, no_wrap=True)
        for row in rows:
            table.add_row(*(escape(cell) for cell in row))
        console.print(table)
        return
    if title:
        console.print(f"[b]{escape(title)}[/]")
    for row in rows:
        console.print(f"[b]{escape(row[0])}[/]", soft_wrap=True)  # never broken by rich
        details = " · ".join(f"{column} {cell}" for column, cell in zip(columns[1:], row[1:],
                                                                        strict=True) if cell)
        console.print(Text("  " + details), soft_wrap=False)


def print_outline(outline: Outline, as_json: bool) -> None:
    if as_json:
        click.echo(outline.to_json())
        return
    print_table(("#", "title", "main point", "words"),
                [(str(i), s.title, s.main_point, str(s.words))
                 for i, s in enumerate(outline.sections, 1)],
                title=f"Outline: {outline.planned_words} words")


def print_result(result: JobResult, output: Path | None, as_json: bool) -> None:
    """A finished job: the document (to ``output`` or stdout) and one summary line, or JSON."""
    document = Path(result.document_path).read_text(encoding="utf-8")
    if output is not None:
        try:
            atomic_write(output, document)
        except DestinationError as exc:
            raise DestinationError(f"{exc}; the document is kept in {result.document_path}"
                                   ) from exc
    if as_json:
        click.echo(json.dumps(result.as_dict(), ensure_ascii=False))
        return
    if output is None:
        click.echo(document)
    d = result.as_dict()
    planned = (f" (the plan said {result.predicted_seconds:.0f} s)"
               if result.predicted_seconds is not None else "")
    click.echo(
        f"job {result.job}: {d['words']} words in {len(result.sections)} sections "
        f"({d['planned_words']} planned) in {result.seconds:.0f} s{planned}, "
        f"{d['generated_tokens']} tokens at {d['decode_tokens_per_s']} tok/s; prompt tokens "
        f"evaluated / context = {d['prompt_to_context']}" + (f"; saved {output}" if output
                                                               else ""), err=True
    )
    review = d.get("review") or {}
    if review.get("short_sections"):
        click.echo(f"job {result.job}: {short_line(review['short_sections'])}; `lwlocal review "
                   f"{result.job}` says more, `lwlocal resume {result.job} --rewrite N` writes "
                   "one again", err=True)


def print_review(review: dict[str, Any], as_json: bool) -> None:
    """A document's review (:meth:`lwlocal.write.review.Review.as_dict`): a row a section,
    then the totals."""
    if as_json:
        click.echo(json.dumps(review, ensure_ascii=False))
        return
    rows = []
    for s in review["sections"]:
        repaired = ", ".join(f"{n} {kind}" for kind, n in s["repaired"].items())
        rows.append((str(s["index"]), s["title"], "" if s["planned"] is None else
                     str(s["planned"]), str(s["written"]), str(s["sentences"]), str(s["talk"]),
                     str(s["repeated"]), str(s["garbled"]),
                     str(s["boundary"] + s["quote"] + s["title_repeated"]),
                     repaired, "rewrite" if s["rewrite"] else ""))
    print_table(("#", "title", "planned", "written", "sentences", "talk", "repeated", "garbled",
                 "leaks", "repaired", ""), rows, title="Review")
    out.print(summary_line(review), soft_wrap=True)
    for change in review["outline_changes"]:
        out.print(f"outline: {escape(change)}", soft_wrap=True)
    if review["rewrite"]:
        out.print(f"worth writing again: sections {_numbers(review['rewrite'])} (`lwlocal "
                  "resume JOB --rewrite N`)", soft_wrap=True)


def _numbers(indices: list[int]) -> str:
    return ", ".join(str(i) for i in indices)


def print_memory_plan(plan: Plan) -> None:
    s, m = plan.settings, plan.memory
    sizes = "sizes from the GGUF" if plan.exact else "sizes estimated from the card"
    out.print(f"[bold]{escape(plan.model)}[/] ({sizes}): "
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
        out.print(f"  - {escape(name_settings(line, option_name))}")
    for line in plan.suggestions:
        out.print(f"  [yellow]> {escape(name_settings(line, option_name))}[/]")


def print_quantized(result: QuantizeResult) -> None:
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    with_imatrix = (f", importance matrix of {result.imatrix_entries} tensors"
                    if result.imatrix_entries else "")
    click.echo(f"{result.path}: {result.type}, {result.bytes / 2**20:.1f} MiB, "
               f"{result.bits_per_weight:.2f} bits per weight{with_imatrix}, "
               f"{result.seconds:.1f} s", err=True)
