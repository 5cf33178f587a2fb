"""The lwlocal terminal app: Model, Compose, Outline, Writing and Library screens over the
same functions as the command line, with the state they share in :class:`TuiState`."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import ModalScreen, Screen
from textual.worker import Worker, WorkerState

from lwlocal.tui.messages import error_text
from lwlocal.tui.screens.compose import ComposeScreen
from lwlocal.tui.screens.help import HelpScreen
from lwlocal.tui.screens.library import LibraryScreen
from lwlocal.tui.screens.model import ModelScreen
from lwlocal.tui.screens.outline import OutlineScreen
from lwlocal.tui.screens.writing import WritingScreen
from lwlocal.tui.state import Task, TuiState
from lwlocal.tui.widgets.bars import StatusBar
from lwlocal.util.errors import LwlocalError
from lwlocal.write.journal import Job

SCREENS = {  # mode name: (screen, key, what it is for)
    "model": (ModelScreen, "f2", "Pick a model and see its memory plan"),
    "compose": (ComposeScreen, "f3", "Prompt, target words, mode and settings"),
    "outline": (OutlineScreen, "f4", "Edit the planned sections"),
    "writing": (WritingScreen, "f5", "The document as it is written"),
    "library": (LibraryScreen, "f6", "Past jobs: open, resume, export, delete"),
}


class LwlocalApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "lwlocal"
    MODES = {name: screen for name, (screen, _, _) in SCREENS.items()}
    DEFAULT_MODE = "compose"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    # priority: the F-keys work inside text fields too; the screen bar shows them
    BINDINGS = [Binding("f1", "help", "Help", show=False, priority=True),
                *(Binding(key, f"switch_mode('{name}')", name.capitalize(), show=False,
                          priority=True)
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

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """No screen switches under a dialog."""
        return not (action in ("help", "switch_mode") and isinstance(self.screen, ModalScreen))

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def refresh_css(self, animate: bool = True) -> None:
        """Textual's refresh, then the screens of the other modes too: Textual refreshes only
        the current mode's, so each other screen would parse and apply the whole stylesheet
        again on its next switch (seconds on a slow machine, while a job is being written)."""
        super().refresh_css(animate)
        for mode in self.MODES:
            for screen in self._screen_stacks.get(mode, []):
                if screen._css_update_count != self._css_update_count:
                    self.stylesheet.update(screen, animate=animate)
                    screen._css_update_count = self._css_update_count

    # the status bar and errors
    def refresh_status(self) -> None:
        """Show the state's model, length, session and task on the current screen's bar."""
        if not self.is_running or not self.screen_stack:  # closing
            return
        for bar in self.screen.query(StatusBar):
            bar.show(self.state)

    def show_error(self, exc: BaseException) -> None:
        """An error as one line in a notification, in the app's words."""
        self.notify(error_text(exc), severity="error")

    # the one long task
    def begin_task(self, what: str, mode: str) -> threading.Event | None:
        """Start the long step ``what`` (shown on the ``mode`` screen) and return its cancel
        event; None, with a notification, while another one runs (they share the model)."""
        running = self.state.task
        if running is not None:
            self.notify(f"{running.what} is still running: stop it first (Esc on the "
                        f"{running.mode.capitalize()} screen)", severity="warning")
            return None
        self.state.task = Task(what, mode)
        self.refresh_status()
        return self.state.task.cancel

    def end_task(self) -> None:
        self.state.task = None
        self.refresh_status()

    def on_unmount(self) -> None:
        """Quitting stops the long step, so the process does not wait for it."""
        if self.state.task is not None:
            self.state.task.cancel.set()

    # moving between screens
    def open_outline(self) -> None:
        self.switch_mode("outline")

    def start_writing(self) -> None:
        """Write the outline being edited as a new job, on the Writing screen."""
        self.state.job = None
        self.state.start_requested = True
        self.switch_mode("writing")

    def show_job(self, job: Job, start: bool) -> None:
        """Show ``job`` on the Writing screen, and write it on when ``start``."""
        try:
            outline = job.outline()
        except (LwlocalError, OSError, ValueError) as exc:
            self.show_error(exc)
            return
        self.state.job = job
        self.state.outline = outline or self.state.outline
        self.state.start_requested = start
        if self.current_mode == "writing" and isinstance(self.screen, WritingScreen):
            self.call_later(self.screen.on_screen_resume)
        else:
            self.switch_mode("writing")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """An unexpected error in background work: a notification, never a traceback."""
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.show_error(event.worker.error)
