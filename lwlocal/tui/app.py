"""The lwlocal terminal app: Model, Compose, Outline, Writing and Library screens over the
same functions as the command line, with the state they share in :class:`TuiState`."""

from __future__ import annotations

from collections.abc import Iterable

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from lwlocal.tui.screens.compose import ComposeScreen
from lwlocal.tui.screens.help import HelpScreen
from lwlocal.tui.screens.library import LibraryScreen
from lwlocal.tui.screens.model import ModelScreen
from lwlocal.tui.screens.outline import OutlineScreen
from lwlocal.tui.screens.writing import WritingScreen
from lwlocal.tui.state import TuiState
from lwlocal.write.journal import Job

SCREENS = {  # mode name: (screen, key, what it is for)
    "model": (ModelScreen, "f2", "Pick a model and see its memory plan"),
    "compose": (ComposeScreen, "f3", "Prompt, target words, mode and settings"),
    "outline": (OutlineScreen, "f4", "Edit the planned sections"),
    "writing": (WritingScreen, "f5", "The document as it is written"),
    "library": (LibraryScreen, "f6", "Past jobs: open, resume, export, delete"),
}


class LwlocalApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "lwlocal"
    MODES = {name: screen for name, (screen, _, _) in SCREENS.items()}
    DEFAULT_MODE = "compose"
    BINDINGS = [Binding("f1", "help", "Help"),
                *(Binding(key, f"switch_mode('{name}')", name.capitalize())
                  for name, (_, key, _) in SCREENS.items())]

    def __init__(self, state: TuiState | None = None) -> None:
        super().__init__()
        self.state = state or TuiState()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for name, (_, key, help_text) in SCREENS.items():
            yield SystemCommand(f"{name.capitalize()} ({key.upper()})", help_text,
                                lambda name=name: self.switch_mode(name))
        yield SystemCommand("Help (F1)", "Key bindings", self.action_help)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def open_outline(self) -> None:
        self.switch_mode("outline")

    def start_writing(self) -> None:
        """Write the outline being edited as a new job, on the Writing screen."""
        self.state.job = None
        self.state.start_requested = True
        self.switch_mode("writing")

    def show_job(self, job: Job, start: bool) -> None:
        """Show ``job`` on the Writing screen, and write it on when ``start``."""
        self.state.job = job
        self.state.outline = job.outline() or self.state.outline
        self.state.start_requested = start
        if self.current_mode == "writing" and isinstance(self.screen, WritingScreen):
            self.screen.on_screen_resume()
        else:
            self.switch_mode("writing")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """An unexpected error in background work: a notification, never a traceback."""
        if event.state == WorkerState.ERROR:
            self.notify(f"{type(event.worker.error).__name__}: {event.worker.error}",
                        severity="error")
