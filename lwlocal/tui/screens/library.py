"""Library: past jobs from their journals; open, resume, export, delete. The columns of fixed
width come first, so that at 80 columns only a long job id or model name runs off the edge."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.widgets import DataTable, Label

from lwlocal.tui.guard import guarded
from lwlocal.tui.screens.base import AppScreen
from lwlocal.tui.screens.confirm import ConfirmScreen
from lwlocal.tui.screens.export import ExportScreen
from lwlocal.tui.state import TuiState, job_state
from lwlocal.util.errors import LwlocalError
from lwlocal.write.journal import BrokenJob, Job, list_jobs


class LibraryScreen(AppScreen):
    MODE = "library"
    AUTO_FOCUS = "#jobs"
    BINDINGS = [("o", "open", "Open"), ("r", "resume", "Resume"), ("e", "export", "Export"),
                ("d", "delete", "Delete")]

    def body(self) -> ComposeResult:
        yield Label("", id="library-count")
        yield DataTable(id="jobs", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns("created", "state", "words", "job", "model")
        self.jobs: list[Job | BrokenJob] = []

    @guarded
    def on_screen_resume(self) -> None:
        self.reload()

    def reload(self) -> None:
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        self.jobs = list(reversed(list(list_jobs(self.lw.state.jobs_root))))
        for job in self.jobs:
            table.add_row(*_cells(job, self.lw.state), key=job.id)
        if self.jobs:
            table.move_cursor(row=min(max(row, 0), len(self.jobs) - 1))
        count = len(self.jobs)
        self.query_one("#library-count", Label).update(
            f"{count} job{'' if count == 1 else 's'}, newest first" if count else
            "No jobs yet: compose one (F3).")

    def _selected(self) -> Job | None:
        """The job on the cursor's row; a broken one is said to be, with why."""
        row = self.query_one(DataTable).cursor_row
        job = self.jobs[row] if self.jobs and 0 <= row < len(self.jobs) else None
        if isinstance(job, BrokenJob):
            self.lw.show_error(LwlocalError(f"{job.id} is broken: {job.why}"))
            return None
        return job

    @on(DataTable.RowSelected, "#jobs")
    @guarded
    def action_open(self) -> None:
        if job := self._selected():
            self.lw.show_job(job, start=False)

    @guarded
    def action_resume(self) -> None:
        if job := self._selected():
            if job.state == "done":
                self.notify(f"{job.id} is done: nothing to resume")
            else:
                self.lw.show_job(job, start=True)

    @guarded
    def action_export(self) -> None:
        if job := self._selected():
            self.app.push_screen(ExportScreen(job))

    @guarded
    def action_delete(self) -> None:
        job = self._selected()
        if job is None:
            return

        def confirmed(yes: bool | None) -> None:
            if not yes:
                return
            try:
                job.delete()
            except (LwlocalError, OSError) as exc:
                self.lw.show_error(exc)
            if self.lw.state.job and self.lw.state.job.dir == job.dir:
                self.lw.state.show(None)
            self.reload()

        self.app.push_screen(ConfirmScreen(
            f"Delete {job.id} and everything written in it?"), confirmed)


def _cells(job: Job | BrokenJob, state: TuiState) -> tuple[str | Text, ...]:
    """A job's row: created, state (the app's for the job on screen), words, id, model (a
    broken job: its state and id); the id and the model as text, never markup."""
    if isinstance(job, BrokenJob):
        return "", job.state, "?", Text(job.id), "?"
    shown = state.job is not None and state.job.dir == job.dir
    created = datetime.fromtimestamp(job.meta.created)
    return (created.strftime("%Y-%m-%d %H:%M"), state.job_state() if shown else job_state(job),
            f"{job.words():,}", Text(job.id), Text(Path(str(job.meta.settings.model or "?")).name))
