"""Writing: a dashboard of the job being written: the sections (done, being written, pending),
section and document progress, tokens/s from the first token, elapsed time and time left, the
context in use, and the document as it streams in. The writer runs in a worker thread and every
finished section is already in the job's journal; a pause shows the part of the section written
so far, on screen and on disk, and resuming writes that section again from its start (to the same
text: docs/reproducible.md). Which job is shown, and whether it
is being written, stopping or paused, is the app's state (:class:`TuiState`), not this
screen's."""

from __future__ import annotations

import threading
from dataclasses import replace

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message

from lwlocal.tui.guard import guarded
from lwlocal.tui.messages import error_text
from lwlocal.tui.screens.base import AppScreen
from lwlocal.tui.screens.confirm import ConfirmScreen
from lwlocal.tui.screens.export import ExportScreen
from lwlocal.tui.screens.review import ReviewScreen
from lwlocal.tui.state import CANCELLED, JOB_ACTIONS
from lwlocal.tui.widgets.document_view import DocumentView
from lwlocal.tui.widgets.job_dashboard import JobDashboard, JobView
from lwlocal.tui.widgets.section_list import SectionList
from lwlocal.util.cpu import run_in_background
from lwlocal.util.errors import LwlocalError
from lwlocal.util.progress import Progress
from lwlocal.write.journal import Job
from lwlocal.write.outline import Outline
from lwlocal.write.review import review_job, short_line
from lwlocal.write.words import count_words


class WritingScreen(AppScreen):
    MODE = "writing"
    BINDINGS = [Binding("p,escape", "pause", "Pause"), Binding("r", "resume", "Resume"),
                Binding("c", "cancel", "Cancel…"), Binding("e", "export", "Export"),
                Binding("v", "review", "Review")]

    class Update(Message):
        """A progress event from the writing thread."""

        def __init__(self, event: Progress) -> None:
            super().__init__()
            self.event = event

    class Started(Message):
        """The new job's folder exists (its outline saved) and the model is ready."""

        def __init__(self, job: Job) -> None:
            super().__init__()
            self.job = job

    class Stopped(Message):
        """The writing thread ended: the job finished, stopped, or failed with ``error``."""

        def __init__(self, error: str | None, finished: bool) -> None:
            super().__init__()
            self.error, self.finished = error, finished

    def body(self) -> ComposeResult:
        yield JobDashboard(id="dashboard")
        with Horizontal(id="writing-body"):
            yield SectionList(id="section-list")
            yield DocumentView(id="document-view")

    def on_mount(self) -> None:
        self._outline: Outline | None = None
        self._step = 0  # the section the document on screen ends in
        self._written: dict[int, int] = {}  # words of each section with any
        self._finished: set[int] = set()
        self._base = 0  # words of the sections before the current one
        self._pending: list[str] = []  # text that came while the screen was hidden
        self._last_event: Progress | None = None

    @property
    def writing(self) -> bool:
        return self.lw.state.writing

    @guarded
    async def on_screen_resume(self) -> None:
        """Show the app's job; start writing it if that was asked for."""
        if self._pending:
            text, self._pending = "".join(self._pending), []
            await self.query_one(DocumentView).append(text)
        if not self.writing:
            await self.show_job()
        else:
            self._dashboard()
        if self.lw.state.start_requested:
            self.lw.state.start_requested = False
            self.start()

    # what is on disk
    async def show_job(self) -> None:
        """The job from its journal: finished sections and the part of the next one a pause
        kept."""
        job = self.lw.state.job
        self._step, self._written, self._finished = 0, {}, set()
        self._outline = job.outline() if job else None
        if job is None:
            await self.query_one(DocumentView).show("")
            self._dashboard()
            return
        self._finished = set(job.finished())
        for i in self._finished:
            self._written[i] = count_words(job.section_text(i) or "")
        text = job.assemble() if self._outline else ""
        following = max(self._finished, default=0) + 1
        partial = job.partial_text(following)
        if partial and self._outline and following <= len(self._outline.sections):
            self._written[following] = count_words(partial)
            self._step = following
            if job.meta.settings.mode != "direct":
                text = (text.rstrip() + "\n\n" if text.strip() else "") + (
                    f"## {self._outline.sections[following - 1].title}\n\n")
            text += partial
        elif self._finished:
            self._step = max(self._finished)
        await self.query_one(DocumentView).show(text)
        self._dashboard()

    # starting and stopping
    def start(self, rewrite: tuple[int, ...] = ()) -> None:
        """Write the app's job on (and the sections in ``rewrite`` again), or a new job from
        the app's outline when there is none."""
        state = self.lw.state
        if self.writing or (state.job is None and state.outline is None) or (
                state.job and state.job.state == "done" and not rewrite):
            return
        what = f"writing {state.job.id}" if state.job else "writing a new job"
        cancel = self.lw.begin_task(what, self.MODE)
        if cancel is None:
            return
        state.paused, state.stopping = False, ""
        self._last_event = None
        self.query_one(JobDashboard).begin()
        if state.job is None and state.outline is not None:
            state.outline.words = state.outline.planned_words
        self._dashboard("loading the model…")
        self.refresh_bindings()
        self.write(cancel, state.job, state.outline, rewrite)

    @work(thread=True, exclusive=True, group="writing", exit_on_error=False)
    def write(self, cancel: threading.Event, job: Job | None, outline: Outline | None,
              rewrite: tuple[int, ...] = ()) -> None:
        state = self.lw.state
        run_in_background()  # the interface keeps its share of the cores
        try:
            if job is None:  # a new job: the edited budgets are the plan
                assert outline is not None
                self.lw.choose_speculation(self._dashboard)
                if cancel.is_set():
                    raise KeyboardInterrupt
                session = state.load_session(replace(state.settings(), words=outline.words))
                job = session.new_job(state.jobs_root)
                job.save_outline(outline)
                job.update(state="outlined")
                self.post_message(self.Started(job))
            else:
                session = state.load_session(job.meta.settings)
            if cancel.is_set():
                raise KeyboardInterrupt
            session.run(job, job.outline() or outline, progress=self._progress, cancel=cancel,
                        rewrite=rewrite)
        except KeyboardInterrupt:
            self.post_message(self.Stopped(None, finished=False))
        except Exception as exc:  # noqa: BLE001 - any failure ends as one line on screen
            self.post_message(self.Stopped(error_text(exc), finished=False))
        else:
            self.post_message(self.Stopped(None, finished=True))

    def _progress(self, event: Progress) -> None:
        """From the writing thread: hand the event to the screen."""
        self.post_message(self.Update(event))

    @on(Started)
    @guarded
    async def _started(self, message: Started) -> None:
        self.lw.state.show(message.job)
        self.lw.refresh_status()
        await self.show_job()
        self._dashboard("starting…")

    @on(Update)
    @guarded
    async def _update(self, message: Update) -> None:
        event = message.event
        if not self.writing:
            return
        section_begins = self._last_event is None or self._last_event.step != event.step
        self._last_event = event
        if event.stage == "write":
            await self._stream(event)
        elif event.stage == "rewind":  # the writer cut the text back: read it again
            self._pending.clear()
            await self.show_job()
        if self.is_current:  # hidden, it is drawn once when it shows again
            if section_begins:
                self.lw.refresh_status()  # the model is loaded; a section begins
            self._dashboard()

    async def _stream(self, event: Progress) -> None:
        job = self.lw.state.job
        if event.step != self._step and job is not None:
            self._step = event.step
            self._base = sum(self._written.get(i, 0) for i in range(1, event.step))
            if job.meta.settings.mode != "direct":
                view = self.query_one(DocumentView)
                gap = "\n\n" if view.source.strip() or self._pending else ""
                await self._show_text(f"{gap}## {event.message}\n\n")
        for i in range(1, event.step):
            self._finished.add(i)
        self._written[event.step] = int(event.done - self._base)
        await self._show_text(event.text)

    async def _show_text(self, text: str) -> None:
        if self.is_current:
            await self.query_one(DocumentView).append(text)
        else:  # drawn when the screen shows again: switching away stays quick
            self._pending.append(text)

    @on(Stopped)
    @guarded
    async def _stopped(self, message: Stopped) -> None:
        state = self.lw.state
        stopping, state.stopping = state.stopping, ""
        self._pending.clear()
        state.paused = stopping == "pause" and not message.finished
        job = state.job
        self.lw.end_task()
        if stopping == "cancel" and job is not None and not message.finished:
            self._mark_cancelled(job)
        if message.error:
            self.notify(message.error, severity="error")
        await self.show_job()
        if message.finished and job is not None:
            self.notify(f"{job.id}: done")
            short = (job.meta.result or {}).get("review", {}).get("short_sections")
            if short:
                self.notify(f"{short_line(short)}: v reviews the job, w there writes a "
                            "section again", severity="warning", timeout=15)
        self.refresh_bindings()
        if stopping == "cancel":
            self.app.switch_mode("library")

    # the dashboard
    def _dashboard(self, note: str = "") -> None:
        job, outline = self.lw.state.job, self._outline or self.lw.state.outline
        state = self.lw.state.job_state()
        session = self.lw.state.session
        context = ((session.chat.stats.context_tokens, session.chat.n_ctx)
                   if self.writing and session and session.chat.n_ctx else None)
        current = self._step if self._step and self._step not in self._finished else None
        view = JobView(job, outline, self._written, self._finished, current, state,
                       self._last_event if self.writing else None, context, note)
        self.query_one(JobDashboard).show(view)
        self.query_one(SectionList).show(outline if job or self.writing else None,
                                         self._written, self._finished, current,
                                         paused=not self.writing)

    # keys
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Each key only where it does something for the job on screen (TuiState.can)."""
        return self.lw.state.can(action) if action in JOB_ACTIONS else True

    def _stop(self, why: str) -> None:
        state = self.lw.state
        if state.task is not None and self.writing and not state.stopping:
            state.stopping = why
            state.task.cancel.set()
            self._dashboard("pausing: the part written so far is kept" if why == "pause"
                            else "stopping…")
            self.refresh_bindings()
            self.lw.refresh_status()

    @guarded
    def action_pause(self) -> None:
        self._stop("pause")

    @guarded
    def action_resume(self) -> None:
        self.start()

    @guarded
    def action_cancel(self) -> None:
        """Stop writing for good (a paused job too), after a confirmation."""
        job = self.lw.state.job
        name = job.id if job else "this job"

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            if self.writing:
                self._stop("cancel")
            elif job is not None:  # paused: only its state changes
                self.lw.state.paused = False
                self._mark_cancelled(job)
                self.app.switch_mode("library")

        self.app.push_screen(ConfirmScreen(
            f"Stop writing {name}? What is written stays in the library, where r resumes it."),
            answered)

    def _mark_cancelled(self, job: Job) -> None:
        """Record in the journal that the user cancelled ``job`` (the library says so)."""
        try:
            job.update(reason=CANCELLED)
        except (LwlocalError, OSError) as exc:
            self.lw.show_error(exc)
        self.lw.refresh_status()

    @guarded
    def action_export(self) -> None:
        if self.lw.state.job is not None:
            self.app.push_screen(ExportScreen(self.lw.state.job))

    @guarded
    def action_open_folder(self) -> None:
        """The job's folder in the desktop's file manager, and its path in a note."""
        job = self.lw.state.job
        if job is not None:
            self.app.open_url(job.dir.as_uri())
            self.notify(f"job folder: {job.dir}")

    @guarded
    def action_review(self) -> None:
        """The job's review; a section chosen there is written again."""
        job = self.lw.state.job
        if job is None:
            return
        try:
            found = review_job(job).as_dict()
        except LwlocalError as exc:
            self.notify(str(exc), severity="error")
            return

        def chosen(index: int | None) -> None:
            if index is not None:
                self.start(rewrite=(index,))

        self.app.push_screen(ReviewScreen(found), chosen)
