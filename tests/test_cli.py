"""The command group: every command listed is there, and `lwlocal --help` stays light."""

import subprocess
import sys

import click

from lwlocal.cli import COMMANDS, cli

HEAVY = ("llama_cpp", "numpy", "gguf", "httpx", "torch", "textual", "rich")


def test_help_imports_no_heavy_library():
    code = ("import sys; from lwlocal.cli import cli; cli(['--help'], standalone_mode=False); "
            f"print('loaded:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    *help_lines, loaded = proc.stdout.rstrip("\n").split("\n")
    assert loaded == "loaded:", f"lwlocal --help imported {loaded}"
    listed = [line.split()[0] for line in help_lines if line.startswith("  ") and line.split()]
    assert [name for name in listed if name in COMMANDS] == list(COMMANDS)


def test_every_command_resolves_to_its_name():
    context = click.Context(cli)
    for name in COMMANDS:
        command = cli.get_command(context, name)
        assert command is not None and command.name == name
    assert cli.get_command(context, "nope") is None
