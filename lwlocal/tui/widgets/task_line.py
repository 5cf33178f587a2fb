"""A long step in progress: a spinner, what it is doing, and a Cancel button; hidden when
idle."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, Label, LoadingIndicator


class TaskLine(Horizontal):
    """``start(text)`` shows it, ``say(text)`` updates it, ``stop()`` hides it; its Cancel
    button posts ``Button.Pressed`` with the id ``cancel-task``."""

    def compose(self) -> ComposeResult:
        yield LoadingIndicator()
        yield Label("", id="task-text")
        yield Button("Cancel (Esc)", id="cancel-task", compact=True)

    def on_mount(self) -> None:
        self.display = False

    def start(self, text: str) -> None:
        self.say(text)
        self.query_one(Button).disabled = False
        self.display = True

    def say(self, text: str) -> None:
        self.query_one("#task-text", Label).update(Text(text))

    def stopping(self) -> None:
        self.say("stopping…")
        self.query_one(Button).disabled = True

    def stop(self) -> None:
        self.display = False
