"""An error the app did not expect: one line, where its details were written, and that the
prompt and the outline are kept."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class FailureScreen(ModalScreen[None]):
    BINDINGS = [("escape,enter", "dismiss(None)", "Close")]

    def __init__(self, error: str, log: Path) -> None:
        super().__init__()
        self.error, self.log_path = error, log

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Text(self.error, style="bold red"), id="failure-error")
            yield Static(Text(f"The app goes on; your prompt and outline are kept. Details are "
                              f"in {self.log_path}."), classes="question")
            with Horizontal(classes="buttons"):
                yield Button("Close (Esc)", variant="primary", id="close")

    def on_button_pressed(self) -> None:
        self.dismiss(None)
