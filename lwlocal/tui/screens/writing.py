"""Writing: the document streams in as Markdown with section and document progress, words,
tokens/s, ETA and context in use; pause, resume, cancel. The writer runs in a worker thread and
every finished section is already in the job's journal."""

from __future__ import annotations

import threading
import time

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Footer, Header, Label, Markdown, ProgressBar, Static

from lwlocal.tui.screens.base import AppScreen
from lwlocal.util.errors import LwlocalError
from lwlocal.util.progress import Progress
from lwlocal.write.words import count_words


class WritingScreen(AppScreen):
    TITLE = "Writing"
    BINDINGS = [("p", "pause", "Pause"), ("r", "resume", "Resume"), ("c", "cancel", "Cancel")]

    class Update(Message):
        def __init__(self, event: Progress) -> None:
            super().__init__()
            self.event = event

    class Stopped(Message):
        def __init__(self, error: str | None, finished: bool) -> None:
            super().__init__()
            self.error, self.finished = error, finished

    def compose(self) -> ComposeResult:
        yield Header()
        yield Label("", id="job-title")
        with Horizontal(classes="bar-row"):
            yield Label("section", classes="bar-label")
            yield ProgressBar(total=1, show_eta=False, id="section-bar")
        with Horizontal(classes="bar-row"):
            yield Label("document", classes="bar-label")
            yield ProgressBar(total=1, show_eta=False, id="document-bar")
        yield Static("", id="writing-stats")
        with VerticalScroll(id="document-scroll"):
            yield Markdown(id="document")
        yield Footer()

    def on_mount(self) -> None:
        self._cancel = threading.Event()
        self._writing = False
        self._start_when_stopped = False
        self._leave_after = False
        self._stream = Markdown.get_stream(self.query_one(Markdown))
        self._step = 0
        self._section_base = self._budget = 0
        self._started = 0.0
        self._words_at_start: float | None = None

    def on_unmount(self) -> None:
        self._cancel.set()  # the app is closing: the journal marks the job interrupted

    def on_screen_resume(self) -> None:
        """Show the app's job; start writing it if that was asked for."""
        if not self._writing:
            self.show_job()
        if self.lw.state.start_requested:
            self.lw.state.start_requested = False
            self.start()

    def show_job(self) -> None:
        """The job's finished sections (the unfinished one restarts when writing resumes)."""
        job = self.lw.state.job
        self._step = 0
        if job is None:
            self.query_one("#job-title", Label).update(
                "No job: compose one (F3) or open one from the library (F6).")
            self.query_one(Markdown).update("")
            return
        outline = job.outline()
        done = job.assemble() if outline else ""
        self.query_one(Markdown).update(done)
        total = outline.words if outline else job.meta.settings.words
        written = count_words(done)
        self.query_one("#document-bar", ProgressBar).update(total=total, progress=written)
        self.query_one("#section-bar", ProgressBar).update(total=1, progress=0)
        self.query_one("#job-title", Label).update(
            f"[b]{job.id}[/b] · {job.state} · {written:,} of {total:,} words")
        self.query_one("#writing-stats", Static).update(
            "r: write" if job.state != "done" else "done")

    def start(self) -> None:
        """Write the app's job on, or a new job from the app's outline when there is none."""
        state = self.lw.state
        if self._writing:  # still stopping (a pause just asked for): start once stopped
            self._start_when_stopped = True
            return
        if (state.job is None and state.outline is None) or (
                state.job and state.job.state == "done"):
            return
        if state.job:
            self.show_job()
        else:
            self.query_one("#job-title", Label).update("Starting a new job…")
        self._cancel.clear()
        self._writing = True
        self._started, self._words_at_start = time.monotonic(), None
        self.query_one("#writing-stats", Static).update("loading the model…")
        self.write()

    @work(thread=True, exclusive=True, group="writing", exit_on_error=False)
    def write(self) -> None:
        state = self.lw.state
        try:
            if state.job is None:  # the edited budgets are the plan: their sum is the target
                if state.outline is None:
                    raise LwlocalError("no outline to write: compose a prompt and plan it (F3)")
                state.outline.words = state.words = state.outline.planned_words
                session = state.load_session(state.settings())
                state.job = session.new_job(state.jobs_root)
                state.job.save_outline(state.outline)
                state.job.update(state="planned")
                self.app.call_from_thread(self.show_job)
            else:
                session = state.load_session(state.job.meta.settings)
            job = state.job
            session.run(job, job.outline() or state.outline,
                        progress=self._progress,
                        cancel=self._cancel)
        except KeyboardInterrupt:
            self.post_message(self.Stopped(None, finished=False))
        except LwlocalError as exc:
            self.post_message(self.Stopped(str(exc), finished=False))
        else:
            self.post_message(self.Stopped(None, finished=True))

    def _progress(self, event: Progress) -> None:
        """From the writing thread: hand the event to the screen."""
        self.post_message(self.Update(event))

    @on(Update)
    async def _update(self, message: Update) -> None:
        event = message.event
        if event.stage != "write":
            self.query_one("#writing-stats", Static).update(
                f"planning the outline: {event.done:.0f} tokens")
            return
        job = self.lw.state.job
        if job is None:
            return
        if event.step != self._step:
            outline = job.outline()
            self._step = event.step
            self._section_base = sum(count_words(job.section_text(i) or "")
                                     for i in range(1, event.step))
            self._budget = outline.sections[event.step - 1].words if outline else 0
            if job.meta.settings.mode != "direct":
                gap = "\n\n" if self.query_one(Markdown).source.strip() else ""
                await self._stream.write(f"{gap}## {event.message}\n\n")
        await self._stream.write(event.text)
        self.query_one("#section-bar", ProgressBar).update(
            total=self._budget, progress=min(self._budget, event.done - self._section_base))
        self.query_one("#document-bar", ProgressBar).update(total=event.total,
                                                            progress=event.done)
        self.query_one("#writing-stats", Static).update(self._stats(event))
        self.query_one("#document-scroll", VerticalScroll).scroll_end(animate=False)

    def _stats(self, event: Progress) -> str:
        if self._words_at_start is None:
            self._words_at_start, self._started = event.done, time.monotonic()
        elapsed = time.monotonic() - self._started
        pace = (event.done - self._words_at_start) / elapsed if elapsed > 1 else 0
        eta = (f"{(event.total - event.done) / pace / 60:.0f} min left" if pace > 0
               else "ETA …")
        session = self.lw.state.session
        context = (f" · context {session.chat.stats.context_tokens:,}/"
                   f"{session.chat.n_ctx:,}" if session else "")
        return (f"section {event.step}/{event.steps} · {event.done:,.0f}/{event.total:,.0f} "
                f"words · {event.rate:.1f} tok/s · {eta}{context}")

    @on(Stopped)
    def _stopped(self, message: Stopped) -> None:
        self._writing = False
        if message.error:
            self.notify(message.error, severity="error")
        self.show_job()
        if message.finished and self.lw.state.job:
            self.notify(f"{self.lw.state.job.id}: done")
        if self._leave_after:
            self._leave_after = False
            self.app.switch_mode("library")
        elif self._start_when_stopped:
            self._start_when_stopped = False
            self.start()

    def action_pause(self) -> None:
        if self._writing:
            self._cancel.set()
            self.notify("pausing: the section being written restarts on resume")

    def action_resume(self) -> None:
        self.start()

    def action_cancel(self) -> None:
        if self._writing:
            self._leave_after = True
            self._cancel.set()
        else:
            self.app.switch_mode("library")
