"""The command reference of docs/commands.md, made from the commands' own ``--help``:

    python -m lwlocal.cli.reference docs/commands.md            # write it (``make docs``)
    python -m lwlocal.cli.reference docs/commands.md --check    # exit 1 when it is stale

Only the text between ``BEGIN`` and ``END`` is generated; the rest of the file is written by hand.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from lwlocal.cli import cli
from lwlocal.util.atomic import atomic_write

BEGIN = ("<!-- the command reference: generated from each command's --help by `make docs` "
         "(python -m lwlocal.cli.reference docs/commands.md); edit the commands, not this -->")
END = "<!-- end of the command reference -->"
WIDTH = 100  # columns the help is wrapped to, whatever the terminal


def _blocks(title: str, command: click.Command, context: click.Context) -> list[str]:
    """The help of ``command``, then of each of its subcommands (a group's)."""
    blocks = [f"### `{title}`\n\n```text\n{command.get_help(context).rstrip()}\n```\n"]
    if isinstance(command, click.Group):
        for name in command.list_commands(context):
            sub = command.get_command(context, name)
            assert sub is not None
            blocks += _blocks(f"{title} {name}", sub, click.Context(
                sub, info_name=name, parent=context, terminal_width=WIDTH,
                max_content_width=WIDTH))
    return blocks


def reference() -> str:
    """``lwlocal --help`` and each command's ``--help`` (and its subcommands'), in the order
    of ``lwlocal --help``."""
    top = click.Context(cli, info_name="lwlocal", terminal_width=WIDTH, max_content_width=WIDTH)
    return "\n".join(_blocks("lwlocal", cli, top))


def with_reference(document: str) -> str:
    """``document`` with a fresh reference between its markers."""
    start, end = document.find(BEGIN), document.find(END)
    if start < 0 or end < start:
        raise click.ClickException(f"the document lacks the markers {BEGIN} and {END}")
    return f"{document[:start + len(BEGIN)]}\n\n{reference()}\n{document[end:]}"


@click.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--check", is_flag=True, help="Only say whether PATH's reference is up to date.")
def main(path: Path, check: bool) -> None:
    """Write the command reference into PATH (docs/commands.md), between its markers."""
    document = path.read_text(encoding="utf-8")
    fresh = with_reference(document)
    if check:
        if fresh != document:
            click.echo(f"{path}: the command reference is stale; run make docs", err=True)
            sys.exit(1)
    elif fresh != document:
        atomic_write(path, fresh)


if __name__ == "__main__":
    main()
