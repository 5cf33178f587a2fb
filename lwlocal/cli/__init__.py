"""The ``lwlocal`` command: a group whose commands live one module per group of commands, each
imported only when it runs (so ``lwlocal --help`` loads neither llama.cpp nor numpy)."""

from __future__ import annotations

import importlib
import sys
import warnings
from typing import Any
from warnings import showwarning as show_python_warning

import click

from lwlocal.util.errors import LwlocalError, LwlocalWarning, SettingError, name_settings
from lwlocal.util.interrupt import exit_status, handle_sigterm

# name: (module under lwlocal.cli, function, one-line help shown by `lwlocal --help`)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "write": ("writing", "write", "Write a long document: plan an outline, then write it."),
    "resume": ("writing", "resume", "Go on with a job from its first unfinished section."),
    "review": ("writing", "review", "Review a document section by section: what to rewrite."),
    "jobs": ("writing", "jobs", "List writing jobs with their state."),
    "export": ("writing", "export_command", "Save a job's document as Markdown, text or HTML."),
    "batch": ("writing", "batch", "Write every prompt of a JSON lines file, several at once."),
    "dataset": ("dataset", "dataset", "Build, describe and export a long-output SFT set."),
    "tui": ("writing", "tui", "The terminal app."),
    "models": ("models", "models", "List the model cards and the local GGUF files."),
    "pull": ("models", "pull_command", "Download a Hugging Face hub repository."),
    "inspect": ("models", "inspect_command", "What a GGUF file or checkpoint folder holds."),
    "hw": ("models", "hw", "What this machine and its llama.cpp build can run."),
    "plan": ("models", "plan_command", "How a model fits this machine for a job: the memory plan."),
    "convert": ("quant", "convert", "Convert a Hugging Face checkpoint to GGUF."),
    "quantize": ("quant", "quantize_command", "Quantize a GGUF with llama.cpp's quantizer."),
    "imatrix": ("quant", "imatrix_command", "Compute an importance matrix for quantizing."),
    "quantize-gptq": ("quant", "quantize_gptq_command", "Quantize a checkpoint to GPTQ."),
    "eval-quant": ("quant", "eval_quant", "A quant's quality: perplexity, KL divergence."),
    "serve": ("serving", "serve", "Serve a model as an OpenAI-compatible chat API."),
    "bench": ("serving", "bench", "LongBench-Write style evaluation of length and quality."),
}


class LazyGroup(click.Group):
    """A group that imports a command's module when the command is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, function, _ = COMMANDS[cmd_name]
        command = getattr(importlib.import_module(f"lwlocal.cli.{module}"), function)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, _, short) in COMMANDS.items()])


@click.group(cls=LazyGroup)
@click.version_option(package_name="lwlocal")
def cli() -> None:
    """Ultra-long text generation with LongWriter models on llama.cpp, offline."""


def _show_warning(message: Warning | str, category: type[Warning], *args: Any,
                  **kwargs: Any) -> None:
    """lwlocal's own warnings as one line each; other libraries' as Python prints them."""
    if issubclass(category, LwlocalWarning):
        click.echo(f"lwlocal: warning: {name_settings(str(message), option_name)}", err=True)
    else:
        show_python_warning(message, category, *args, **kwargs)


# the options whose names are not their setting's name with dashes
OPTION_NAMES = {"n_ctx": "--ctx", "n_gpu_layers": "--ngl", "draft_model": "--speculate draft"}


def option_name(setting: str) -> str:
    """The command-line option that sets ``setting`` (``kv_type`` -> ``--kv-type``)."""
    return OPTION_NAMES.get(setting, "--" + setting.replace("_", "-"))


def error_text(exc: LwlocalError) -> str:
    """An error in the command line's words: settings named by their options."""
    return exc.shown(option_name) if isinstance(exc, SettingError) else str(exc)


def main() -> None:
    """Entry point: run the command; a bad input ends with one line on stderr and exit 1,
    Ctrl-C and SIGTERM with one line and 130 or 143."""
    warnings.showwarning = _show_warning
    handle_sigterm()
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort as exc:  # click's KeyboardInterrupt
        click.echo("lwlocal: interrupted", err=True)
        sys.exit(exit_status(exc))
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except LwlocalError as exc:
        click.echo(f"lwlocal: error: {error_text(exc)}", err=True)
        sys.exit(1)
