"""Model and machine commands: models, pull, inspect, hw, plan."""

from __future__ import annotations

import json
import sys
import warnings
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.markup import escape

from lwlocal.cli import option_name
from lwlocal.cli.options import (
    MemoryOptions,
    SpeculatingCommand,
    Speculation,
    gib_option,
    memory_options,
    speculate_option,
)
from lwlocal.cli.render import out, print_memory_plan, print_table
from lwlocal.cli.time_plan import print_time_plan, time_plan_fields
from lwlocal.convert.inspect import inspect_path
from lwlocal.memory import hardware
from lwlocal.memory.allocations import GPU_RUNTIME_DEFAULT
from lwlocal.memory.plan_formats import llama_server_args, ollama_modelfile
from lwlocal.memory.planner import Plan
from lwlocal.memory.speed_probe import kept_speed, measure_speed
from lwlocal.models.catalogue import DEFAULT_MODEL, catalog, get_command, resolve
from lwlocal.models.gguf_file import file_quant
from lwlocal.models.hub import pull
from lwlocal.runtime.llama_build import GPU_BUILD_HINT, llama_build
from lwlocal.util.cpu import default_threads
from lwlocal.util.errors import LwlocalError, LwlocalWarning, SettingError, name_settings
from lwlocal.write.jobs import check_settings, model_plan
from lwlocal.write.settings import MODES, JobSettings

if TYPE_CHECKING:
    from lwlocal.runtime.invariance import Invariance


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
def models(as_json: bool) -> None:
    """List the model cards and the local GGUF files (card files and the models folder)."""
    columns = ("name", "architecture", "params", "layers", "kv heads", "context", "format",
               "local file", "quant")
    rows = []
    for entry in catalog():
        path, card = entry.path, entry.card
        quant = file_quant(path) if path else None
        if as_json:
            click.echo(json.dumps({
                "name": entry.name, "architecture": card.architecture if card else None,
                "params": card.n_params if card else None,
                "layers": card.n_layers if card else None,
                "kv_heads": card.n_kv_heads if card else None,
                "context": card.context_length if card else None,
                "format": card.prompt_format if card else None,
                "path": str(path) if path else None, "bytes": entry.size_bytes,
                "quant": quant, "get": get_command(card) if card and not path else None}))
            continue
        present = f"{path} ({(entry.size_bytes or 0) / 2**20:.0f} MiB)" if path else (
            "not downloaded")
        if card:
            rows.append((card.name, card.architecture, f"{card.n_params / 1e9:.2f}B",
                         str(card.n_layers), str(card.n_kv_heads), str(card.context_length),
                         card.prompt_format, present, quant or "-"))
        else:
            rows.append((entry.name, "", "", "", "", "", "", present, quant or "-"))
    if not as_json:
        print_table(columns, rows)


@click.command("pull")
@click.argument("repo_id")
@click.option("--include", multiple=True, help="Only files matching this pattern (repeatable).")
def pull_command(repo_id: str, include: tuple[str, ...]) -> None:
    """Download a Hugging Face hub repository into the local cache; prints its folder."""
    click.echo(pull(repo_id, list(include) or None))


@click.command("inspect")
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


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--measure", is_flag=True,
              help="Measure this machine's speed for time plans (about 30 s) and, with an "
                   "NVIDIA GPU, the memory its CUDA runtime takes (a second); kept for this "
                   "machine and build, then used by every plan.")
def hw(as_json: bool, measure: bool) -> None:
    """What this machine has: RAM (within any cgroup limit), GPUs, cores, and what the installed
    llama.cpp can use of them; its speed where measured."""
    machine = hardware.detect()
    threads = default_threads(machine.cores)
    if measure:
        from lwlocal.memory.gpu_runtime import measure_gpu_runtime

        if machine.gpu and machine.offload and not machine.unified:
            runtime = measure_gpu_runtime(resolve(DEFAULT_MODEL).path, machine.gpu)
            machine = replace(machine, gpu_runtime=runtime)
        measure_speed(threads, resolve(DEFAULT_MODEL).path)
    build = llama_build()
    speed = kept_speed(threads)
    if as_json:
        click.echo(json.dumps(machine.as_dict() | {"llama_cpp": asdict(build),
                                                   "speed": speed.as_dict() if speed else None}))
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
        measured = machine.gpu_runtime
        out.print("GPU runtime " + (f"{measured / 2**20:.0f} MiB, measured here" if measured
                                    is not None else
                                    f"not measured here (plans use {GPU_RUNTIME_DEFAULT // 2**20} "
                                    "MiB); lwlocal hw --measure"))
    out.print("speed " + (f"{speed.weight_bytes_per_s / 1e9:.1f} GB/s of weights read, "
                          f"{speed.flops_per_s / 1e9:.0f} GFLOP/s in batches on {threads} "
                          f"threads, measured {speed.measured_at}" if speed else
                          "not measured here: lwlocal hw --measure (a plan measures it too)"))


@click.command("plan", cls=SpeculatingCommand)
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
@click.option("--explain", is_flag=True,
              help="Also show the settings that fit, each with the job's predicted time.")
@click.option("--check-invariance", is_flag=True,
              help="Also check, on this machine and build, that the plan's settings compute a "
                   "batch of tokens exactly as one at a time: what keeps a resumed job's and "
                   "speculation's text the same (docs/reproducible.md).")
@speculate_option("off")
@memory_options
def plan_command(model: str, words: int, mode: str, quant: str | None, lang: str,
                 sections: int | None, ram: str | None, vram: str | None, as_json: bool,
                 fmt: str, measure: bool, explain: bool, check_invariance: bool,
                 speculate: Speculation, memory: MemoryOptions) -> None:
    """How MODEL (card or GGUF) fits this machine for a job of --words: settings, memory and
    time (a draft model's memory counted in with --speculate draft MODEL)."""
    ram_bytes, vram_bytes = gib_option(ram, "--ram"), gib_option(vram, "--vram")
    threads = default_threads(hardware.detect().cores)
    speculate, auto = speculate.resolved(model, threads, memory=memory,
                                         elsewhere=ram_bytes is not None or vram_bytes is not None)
    settings = JobSettings(prompt="", words=words, mode=mode, sections=sections,
                           **speculate.settings(), **memory.settings())
    check_settings(settings)
    if vram_bytes is None and kept_speed(threads) is None:
        click.echo("lwlocal: measuring this machine's speed for the time plan, once (about "
                   "30 s; `lwlocal hw --measure` measures it again)", err=True)
        measure_speed(threads, resolve(DEFAULT_MODEL).path)
    chosen = model_plan(model, settings, quant=quant, lang=lang, ram=ram_bytes, vram=vram_bytes)
    plan, path, fmt_of_model, tokenizer = (chosen.plan, chosen.path, chosen.format,
                                           chosen.tokenizer)
    for warning in plan.warnings:
        warnings.warn(warning, LwlocalWarning, stacklevel=1)
    fmt = "json" if as_json else fmt
    if fmt in ("llama-server", "ollama") and not plan.fits:
        raise SettingError(f"{plan.model}: {'; try '.join(plan.suggestions[:2])}")
    if fmt == "json":
        data = plan.as_dict()
        data["reasons"] = [name_settings(line, option_name) for line in plan.reasons]
        data["suggestions"] = [name_settings(line, option_name) for line in plan.suggestions]
        data |= time_plan_fields(plan, explain)
        if auto is not None:
            data["speculation"] = auto.as_dict()
        if measure:
            data["measured_ram_bytes"] = _measure(tokenizer, plan, chosen.draft)
        if check_invariance:
            data.update(_invariance(tokenizer, plan).as_dict())
        click.echo(json.dumps(data))
    elif fmt == "llama-server":
        click.echo(llama_server_args(plan, path, chosen.draft))
    elif fmt == "ollama":
        click.echo(ollama_modelfile(plan, path, fmt_of_model), nl=False)
    else:
        print_memory_plan(plan)
        print_time_plan(plan, explain)
        if auto is not None:
            out.print(f"  speculation (auto): {auto.mode}, {escape(auto.reason)}")
        if measure:
            measured = _measure(tokenizer, plan, chosen.draft)
            error = plan.memory.ram_bytes / measured - 1
            out.print(f"  measured peak RSS {measured / 2**30:.3f} GiB "
                      f"(prediction {error:+.1%})")
        if check_invariance:
            found = _invariance(tokenizer, plan)
            out.print("  " + ("a batch is computed exactly as one token at a time: a resumed "
                              "job and speculation write what a plain run writes" if found.holds
                              else f"a batch differs from one token at a time (logits by up to "
                                   f"{found.max_logit_difference:.3g}): a resumed job and "
                                   "speculation may write other text")
                      + f" (checked over {found.tokens} tokens)")
    if not plan.fits:
        sys.exit(1)


def _invariance(path: Path | None, plan: Plan) -> Invariance:
    """Whether the plan's settings compute a batch as one token at a time, here."""
    from lwlocal.quant.calibration import HELDOUT, shipped
    from lwlocal.runtime.invariance import check_invariance

    if path is None:
        raise LwlocalError("--check-invariance needs a local GGUF file")
    s = plan.settings
    return check_invariance(path, shipped(HELDOUT), n_ctx=s.n_ctx, n_batch=s.n_batch,
                            n_threads=s.threads, flash_attn=s.flash_attn, kv_type=s.kv_type,
                            n_gpu_layers=s.n_gpu_layers)


def _measure(path: Path | None, plan: Plan, draft: Path | None) -> int:
    """Peak RSS of running the plan on this machine (CPU), with ``draft`` speculating."""
    from lwlocal.memory.probe import measure_peak_rss

    if path is None:
        raise LwlocalError("--measure needs a local GGUF file")
    return measure_peak_rss(path, plan.settings, draft=draft)
