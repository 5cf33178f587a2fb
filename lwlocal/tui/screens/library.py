"""Library: past jobs from their journals; open, resume, export, delete."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.widgets import DataTable, Label

from lwlocal.tui.screens.base import AppScreen
from lwlocal.tui.screens.confirm import ConfirmScreen
from lwlocal.tui.screens.export import ExportScreen
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
        self.query_one(DataTable).add_columns("job", "state", "words", "model", "created")
        self.jobs: list[Job | BrokenJob] = []

    def on_screen_resume(self) -> None:
        self.reload()

    def reload(self) -> None:
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        self.jobs = list(reversed(list(list_jobs(self.lw.state.jobs_root))))
        for job in self.jobs:
            table.add_row(*_cells(job), key=job.id)
        if self.jobs:
            table.move_cursor(row=min(max(row, 0), len(self.jobs) - 1))
        self.query_one("#library-count", Label).update(
            f"{len(self.jobs)} jobs, newest first" if self.jobs else
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
    def action_open(self) -> None:
        if job := self._selected():
            self.lw.show_job(job, start=False)

    def action_resume(self) -> None:
        if job := self._selected():
            if job.state == "done":
                self.notify(f"{job.id} is done: nothing to resume")
            else:
                self.lw.show_job(job, start=True)

    def action_export(self) -> None:
        if job := self._selected():
            self.app.push_screen(ExportScreen(job))

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
                self.lw.state.job = None
            self.reload()

        self.app.push_screen(ConfirmScreen(
            f"Delete {job.id} and everything written in it?"), confirmed)


def _cells(job: Job | BrokenJob) -> tuple[str, ...]:
    """A job's row: id, state, words, model, created (a broken job: its id and state)."""
    if isinstance(job, BrokenJob):
        return job.id, job.state, "?", "?", ""
    created = datetime.fromtimestamp(job.meta.created)
    return (job.id, job.state, f"{job.words():,}", Path(str(job.meta.settings.model or "?")).name,
            created.strftime("%Y-%m-%d %H:%M"))
