"""The dashboard of a job being written: its state and words, section and document bars, and
a line of figures (tokens/s, elapsed, time left, context in use)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, ProgressBar, Static

from lwlocal.util.progress import Progress
from lwlocal.write.journal import Job
from lwlocal.write.outline import Outline


def clock(seconds: float) -> str:
    """``m:ss``, or ``h:mm:ss`` from an hour."""
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}" if minutes >= 60 else (
        f"{minutes}:{secs:02d}")


@dataclass
class JobView:
    """What the dashboard shows: the job and its outline, the words of each section with any
    (the writer's own count), the section being written or stopped part-way, the state
    (``writing``, ``stopping``, ``paused`` or the journal's), the latest progress event while
    writing, the context in use of the loaded model, and a note that replaces the figures."""

    job: Job | None
    outline: Outline | None
    written: dict[int, int] = field(default_factory=dict)
    finished: set[int] = field(default_factory=set)
    current: int | None = None
    state: str = ""
    event: Progress | None = None
    context: tuple[int, int] | None = None  # tokens in use, window
    note: str = ""

    @property
    def writing(self) -> bool:
        return self.state in ("writing", "stopping")

    @property
    def words(self) -> float:
        event = self.event
        return event.done if event and event.stage == "write" else sum(self.written.values())


class JobDashboard(Vertical):
    """Shows a :class:`JobView`; ``begin()`` when a run starts (elapsed time and the pace for
    the time left count from there)."""

    def compose(self) -> ComposeResult:
        yield Label("", id="job-title")
        with Horizontal(classes="bar-row"):
            yield Label("section", classes="bar-label")
            yield ProgressBar(total=1, show_eta=False, id="section-bar")
        with Horizontal(classes="bar-row"):
            yield Label("document", classes="bar-label")
            yield ProgressBar(total=1, show_eta=False, id="document-bar")
        yield Static("", id="writing-stats")

    def on_mount(self) -> None:
        self.begin()

    def begin(self) -> None:
        self._started = time.monotonic()
        self._words_at_start: float | None = None

    def show(self, view: JobView) -> None:
        job, outline = view.job, view.outline
        done = view.state == "done"
        total = outline.planned_words if outline else 0
        if job is not None:
            self.query_one("#job-title", Label).update(
                Text.assemble((job.id, "b"),
                              f" · {view.state} · {view.words:,.0f} of {total:,} words"))
        else:
            self.query_one("#job-title", Label).update(
                "Starting a new job…" if view.writing else
                "No job: compose one (F3) or open one from the library (F6).")
        step = view.current or 0
        budget = (outline.sections[step - 1].words
                  if outline and 0 < step <= len(outline.sections) else 0)
        section = self.query_one("#section-bar", ProgressBar)
        document = self.query_one("#document-bar", ProgressBar)
        if done:
            section.update(total=1, progress=1)
            document.update(total=1, progress=1)
        else:
            section.update(total=max(budget, 1),
                           progress=min(budget, view.written.get(step, 0)))
            document.update(total=max(total, 1), progress=min(total, view.words))
        self.query_one("#writing-stats", Static).update(view.note or self._figures(view))

    def _figures(self, view: JobView) -> str:
        job, event = view.job, view.event
        if job is None:
            return ""
        if view.state == "done":
            result = job.meta.result or {}
            return (f"[green]done[/]: {job.words():,} words in {len(view.finished)} sections"
                    f" · {clock(float(result.get('seconds', 0)))} · "
                    f"{float(result.get('decode_tokens_per_s', 0)):.1f} tok/s · "
                    "e exports · F6 library")
        if not view.writing:
            if view.current:
                return (f"{'paused' if view.state == 'paused' else 'stopped'} part-way through "
                        f"section {view.current}: r writes it again from its start")
            return "r writes it" if job.state in ("new", "outlined") else "r writes on"
        if event is None:
            return "loading the model…"
        where = f"section {event.step}/{event.steps}"
        if event.stage == "prompt":
            return (f"{where} · reading the prompt: {event.done:,.0f} of {event.total:,.0f} "
                    "tokens")
        if event.stage == "outline":
            left = f" · about {clock(event.left)} left" if event.left is not None else ""
            return f"drafting the outline: {event.done:,.0f} tokens{left}"
        now = time.monotonic()
        if self._words_at_start is None:
            self._words_at_start, self._started = event.done, now
        elapsed = now - self._started
        pace = (event.done - self._words_at_start) / elapsed if elapsed > 0 else 0.0
        if event.left is not None:  # the job's, from its time plan corrected by its pace
            left = f"about {clock(event.left)} left"
        else:  # this section's, from the words' pace
            left = (f"about {clock((event.total - event.done) / pace)} left" if pace > 0
                    else "time left …")
        rate = f"{event.rate:.1f} tok/s" if event.rate else "… tok/s"
        context = (f" · context {view.context[0]:,} of {view.context[1]:,}"
                   if view.context else "")
        return f"{where} · {rate} · {clock(elapsed)} · {left}{context}"
