"""Export a job's document: the format and the file; an error stays in the dialog as one line,
so the path can be corrected."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select

from lwlocal.tui.guard import guarded
from lwlocal.util.errors import LwlocalError
from lwlocal.write.export import EXPORT_FORMATS, export
from lwlocal.write.journal import Job


class ExportScreen(ModalScreen[Path | None]):
    """Dismissed with the file written, or None when cancelled."""

    BINDINGS = [("escape", "dismiss(None)", "Cancel")]

    def __init__(self, job: Job) -> None:
        super().__init__()
        self.job = job

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text.assemble("Export ", (self.job.id, "b")))
            yield Select([(name, key) for key, name in EXPORT_FORMATS.items()], value="md",
                         allow_blank=False, id="export-format")
            yield Input(str(Path.cwd() / f"{self.job.id}.md"), id="export-path")
            yield Label("", id="export-error")
            with Horizontal(classes="buttons"):
                yield Button("Export", variant="primary", id="export")
                yield Button("Cancel", id="cancel")

    @on(Select.Changed, "#export-format")
    @guarded
    def _format(self, event: Select.Changed) -> None:
        """The file's suffix follows the format (a path without a file name is left as is)."""
        path = self.query_one("#export-path", Input)
        if Path(path.value).name:
            path.value = str(Path(path.value).with_suffix(f".{event.value}"))

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#export")
    @on(Input.Submitted)
    @guarded
    def _go(self) -> None:
        fmt = str(self.query_one("#export-format", Select).value)
        path = Path(self.query_one("#export-path", Input).value).expanduser()
        try:
            written = export(self.job, fmt, path)
        except LwlocalError as exc:
            self._say(str(exc))
        except OSError as exc:  # the file the user chose, not the temporary one beside it
            self._say(f"cannot write {path}: {exc.strerror or exc}")
        else:
            self.notify(f"exported to {written}")
            self.dismiss(written)

    def _say(self, error: str) -> None:
        self.query_one("#export-error", Label).update(Text(error, style="red"))
