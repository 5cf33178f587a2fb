"""The lwlocal terminal app: Model, Compose, Outline, Writing and Library screens over the
same functions as the command line, with the state they share in :class:`TuiState`."""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Iterable
from functools import partial

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.notifications import SeverityLevel
from textual.screen import ModalScreen, Screen
from textual.worker import Worker, WorkerState

from lwlocal.tui.draft import DRAFT_FILE, load_draft, save_draft
from lwlocal.tui.guard import guarded
from lwlocal.tui.messages import error_text
from lwlocal.tui.screens.base import AppScreen
from lwlocal.tui.screens.compose import ComposeScreen
from lwlocal.tui.screens.failure import FailureScreen
from lwlocal.tui.screens.help import HelpScreen
from lwlocal.tui.screens.library import LibraryScreen
from lwlocal.tui.screens.model import ModelScreen
from lwlocal.tui.screens.outline import OutlineScreen
from lwlocal.tui.screens.writing import WritingScreen
from lwlocal.tui.state import Task, TuiState
from lwlocal.tui.widgets.bars import StatusBar
from lwlocal.util.errors import LwlocalError
from lwlocal.util.paths import home
from lwlocal.write.journal import Job

SCREENS = {  # mode name: (screen, key, what it is for)
    "model": (ModelScreen, "f2", "Pick a model and see its memory plan"),
    "compose": (ComposeScreen, "f3", "Prompt, target words, mode and settings"),
    "outline": (OutlineScreen, "f4", "Edit the planned sections"),
    "writing": (WritingScreen, "f5", "The document as it is written"),
    "library": (LibraryScreen, "f6", "Past jobs: open, resume, export, delete"),
}
JOB_COMMANDS = (  # action on the Writing screen, palette title, what it does
    ("pause", "Pause writing", "Stop at the next token; the part written so far is kept"),
    ("resume", "Resume the job", "Write the job on screen on from where it stopped"),
    ("cancel", "Cancel the job…", "Stop writing it for good (it stays in the library)"),
    ("export", "Export the job…", "Markdown, plain text or HTML"),
    ("open_folder", "Open the job folder", "The job's journal, sections and outline"),
)


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
        """``state``: what to start from; by default the draft the app last kept."""
        super().__init__()
        self.state = state or TuiState(draft=home() / DRAFT_FILE)
        if self.state.draft is not None:
            load_draft(self.state, self.state.draft)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for name, (_, key, help_text) in SCREENS.items():
            yield SystemCommand(f"{name.capitalize()} ({key.upper()})", help_text,
                                partial(self.switch_mode, name))
        for action, title, help_text in JOB_COMMANDS:
            if self.state.can(action):
                yield SystemCommand(title, help_text, partial(self.run_job_action, action))
        yield SystemCommand("Help (F1)", "Key bindings", self.action_help)

    @guarded
    async def run_job_action(self, action: str) -> None:
        """A job action of the palette, run on the Writing screen (shown for it)."""
        await self.switch_mode("writing")
        await self.screen.run_action(action)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """No screen switches under a dialog."""
        return not (action in ("help", "switch_mode") and isinstance(self.screen, ModalScreen))

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    # the status bar, notes and errors
    def refresh_status(self) -> None:
        """Show the state on the current screen's status bar."""
        screen = self.screen if self.is_running and self.screen_stack else None
        if isinstance(screen, AppScreen):
            for bar in screen.query(StatusBar):  # none while the screen is being made
                bar.show(self.state, screen.MODE)

    @guarded
    def on_resize(self) -> None:
        self.refresh_status()  # the model's name gives way to the figures when narrow

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """A notification, always as plain text (``markup`` is ignored): it may hold the
        user's or the model's words, brackets and all."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    def show_error(self, exc: BaseException) -> None:
        """An error as one line in a notification, in the app's words."""
        self.notify(error_text(exc), severity="error")

    def report_failure(self, exc: Exception) -> None:
        """An error the app did not expect: its traceback to the log, the draft kept, and a
        dialog (one while it is open); the app goes on."""
        try:
            with self.state.log.open("a", encoding="utf-8") as log:
                log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} "
                          f"{''.join(traceback.format_exception(exc))}\n")
        except OSError:
            pass  # the dialog still says what happened
        self.keep_draft()
        if not isinstance(self.screen, FailureScreen):  # one dialog for errors that follow
            self.push_screen(FailureScreen(error_text(exc), self.state.log))

    def keep_draft(self) -> None:
        """Write the prompt and the outline as they are now to the draft file."""
        if self.state.draft is not None:
            try:
                save_draft(self.state, self.state.draft)
            except (OSError, LwlocalError) as exc:
                self.show_error(exc)

    # the one long task
    def busy(self) -> bool:
        """Whether a long step runs (they share the model), said in a notification if so."""
        running = self.state.task
        if running is not None:
            self.notify(f"{running.what} is still running: stop it first (Esc on the "
                        f"{running.mode.capitalize()} screen)", severity="warning")
        return running is not None

    def begin_task(self, what: str, mode: str) -> threading.Event | None:
        """Start the long step ``what`` (shown on the ``mode`` screen) and return its cancel
        event; None, with a notification, while another one runs."""
        if self.busy():
            return None
        self.state.task = Task(what, mode)
        self.refresh_status()
        return self.state.task.cancel

    def choose_speculation(self, say: Callable[[str], None]) -> None:
        """From a worker, before the form's model loads: Speculate ``auto`` chosen
        (:meth:`TuiState.choose_speculation`), what it does said through ``say`` and the
        choice in a notification."""
        choice = self.state.choose_speculation(lambda line: self.call_from_thread(say, line))
        if choice is not None:
            self.call_from_thread(self.notify, f"Speculate auto: {choice.mode} ({choice.reason})",
                                  timeout=15)

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
        """Write the outline being edited as a new job, on the Writing screen; not while a
        long step runs."""
        if self.busy():
            return
        self.state.show(None)
        self.state.start_requested = True
        self.switch_mode("writing")

    def show_job(self, job: Job, start: bool) -> None:
        """Show ``job`` on the Writing screen, and write it on when ``start``; while a job is
        being written, only that one."""
        state = self.state
        if state.writing and state.job is not None:  # that one, as it is
            if job.dir != state.job.dir:
                self.notify(f"{state.job.id} is being written: pause it first (p on the "
                            "Writing screen)", severity="warning")
            else:
                self.switch_mode("writing")
            return
        try:
            outline = job.outline()
        except (LwlocalError, OSError, ValueError) as exc:
            self.show_error(exc)
            return
        state.show(job)
        state.outline = outline or state.outline
        state.start_requested = start
        if self.current_mode == "writing" and isinstance(self.screen, WritingScreen):
            self.call_later(self.screen.on_screen_resume)
        else:
            self.switch_mode("writing")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """An unexpected error in background work: a notification, never a traceback."""
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.show_error(event.worker.error)
