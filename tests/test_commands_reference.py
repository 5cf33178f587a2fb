"""docs/commands.md's command reference is each command's --help as it is now."""

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from lwlocal.cli.reference import BEGIN, END, main, with_reference

COMMANDS_MD = Path(__file__).parent.parent / "docs" / "commands.md"


def test_the_command_reference_is_up_to_date():
    document = COMMANDS_MD.read_text(encoding="utf-8")
    assert with_reference(document) == document, "docs/commands.md is stale: run make docs"


def test_only_the_text_between_the_markers_is_written(tmp_path):
    page = tmp_path / "commands.md"
    page.write_text(f"# Commands\n\nBy hand.\n\n{BEGIN}\nstale\n{END}\nAfter.\n", encoding="utf-8")
    assert CliRunner().invoke(main, [str(page), "--check"]).exit_code == 1
    assert CliRunner().invoke(main, [str(page)]).exit_code == 0
    text = page.read_text(encoding="utf-8")
    assert text.startswith(f"# Commands\n\nBy hand.\n\n{BEGIN}\n")
    assert text.endswith(f"{END}\nAfter.\n")
    assert "Usage: lwlocal write [OPTIONS] [PROMPT]" in text and "stale" not in text
    assert CliRunner().invoke(main, [str(page), "--check"]).exit_code == 0


def test_a_page_without_the_markers_is_refused(tmp_path):
    page = tmp_path / "commands.md"
    page.write_text("# Commands\n", encoding="utf-8")
    result = CliRunner().invoke(main, [str(page)])
    assert result.exit_code == 1 and "lacks the markers" in result.output
    with pytest.raises(click.ClickException, match="lacks the markers"):
        with_reference("# Commands\n")
