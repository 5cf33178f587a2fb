"""Where and how to export a job's document."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select

from lwlocal.write.export import EXPORT_FORMATS


class ExportScreen(ModalScreen[tuple[str, Path] | None]):
    BINDINGS = [("escape", "dismiss(None)", "Cancel")]

    def __init__(self, job_id: str) -> None:
        super().__init__()
        self.job_id = job_id

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Export {self.job_id}")
            yield Select([(name, key) for key, name in EXPORT_FORMATS.items()], value="md",
                         allow_blank=False, id="export-format")
            yield Input(str(Path.cwd() / f"{self.job_id}.md"), id="export-path")
            with Horizontal(classes="buttons"):
                yield Button("Export", variant="primary", id="export")
                yield Button("Cancel", id="cancel")

    @on(Select.Changed, "#export-format")
    def _format(self, event: Select.Changed) -> None:
        path = self.query_one("#export-path", Input)
        path.value = str(Path(path.value).with_suffix(f".{event.value}"))

    @on(Button.Pressed)
    @on(Input.Submitted)
    def _go(self, event: Button.Pressed | Input.Submitted) -> None:
        if isinstance(event, Button.Pressed) and event.button.id == "cancel":
            self.dismiss(None)
            return
        fmt = str(self.query_one("#export-format", Select).value)
        self.dismiss((fmt, Path(self.query_one("#export-path", Input).value).expanduser()))
