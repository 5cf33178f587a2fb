"""Rich rendering of progress events for the command line."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from lwlocal.util.progress import Progress as Event


class TimeLeftColumn(TimeRemainingColumn):
    """The whole task's time left where its events say it (a job with a time plan: ``left``,
    as ``~m:ss left``), else rich's estimate from this bar's rate."""

    def render(self, task: Task) -> Text:
        left = task.fields.get("left")
        if left is None:
            return super().render(task)
        minutes, seconds = divmod(round(left), 60)
        return Text(f"~{minutes}:{seconds:02d} left", style="progress.remaining")


class TaskProgress:
    """A progress display for long work: reading a prompt and drafting an outline (tokens), writing
    (section k/n, words, tokens/s), converting (tensor k/n, GiB), quantizing (tensor k/n;
    GPTQ: layer k/n), evaluating for an importance matrix or quality figures (chunk k/n,
    tokens/s), benchmark items and batch jobs (k/n); with the time elapsed and the time left:
    the job's, from its time plan and pace, while writing; else from the bar's rate so far."""

    def __init__(self, console: Console) -> None:
        self._bar = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[count]}"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeLeftColumn(),  # -:--:-- until there is a rate, and for work of unknown size
            console=console,
            transient=True,
        )
        self._tasks: dict[str, TaskID] = {}
        self._started = False

    def __enter__(self) -> TaskProgress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._started:  # even with no task yet: Ctrl-C may land between the two
            self._bar.stop()

    def __call__(self, event: Event) -> None:
        """Show ``event``; the display starts with the first one, so that an error raised
        before any work prints nothing else."""
        if not self._started:
            self._started = True
            self._bar.start()
        if event.stage == "notice":  # a line above the bars
            self._bar.console.print(f"lwlocal: {escape(event.message)}", soft_wrap=True)
            return
        stage = "write" if event.stage == "rewind" else event.stage  # text cut back: one bar
        if event.stage == "outline":
            description, total = "drafting the outline", None
            count = f"{event.done:.0f} tokens"
        elif event.stage == "prompt":
            description, total = "reading the prompt", event.total
            count = f"{event.done:.0f}/{event.total:.0f} tokens"
        elif event.stage == "convert":
            description, total = f"tensor {event.step}/{event.steps}", event.total
            count = f"{event.done / 2**30:.2f}/{event.total / 2**30:.2f} GiB"
        elif event.stage == "quantize":
            description, total = f"quantizing {event.step}/{event.steps}", event.total
            count = event.message
        elif event.stage in ("bench", "batch"):
            unit = "item" if event.stage == "bench" else "job"
            description, total = f"{unit} {event.step}/{event.steps}", event.total
            count = event.message
        elif event.stage == "gptq":
            description = f"GPTQ layer {event.step}/{event.steps}" if event.steps else (
                f"GPTQ {event.message}")
            total, count = event.total or None, ""
        elif event.stage in ("imatrix", "eval"):
            which = f" ({event.message})" if event.message else ""
            description, total = f"chunk {event.step}/{event.steps}{which}", event.total
            count = f"{event.done:.0f}/{event.total:.0f} tokens"
        else:
            description, total = f"section {event.step}/{event.steps}", event.total
            count = f"{event.done:.0f}/{event.total:.0f} words"
        if stage not in self._tasks:
            self._tasks[stage] = self._bar.add_task(description, total=total, count="", rate="",
                                                    left=None)
        rate = f"{event.rate:.1f} tok/s" if event.rate else ""
        self._bar.update(self._tasks[stage], description=description, completed=event.done,
                         count=count, rate=rate, left=event.left)
