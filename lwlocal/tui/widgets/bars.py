"""The app's two bars: the status bar at the top (model, length, loaded context and memory, the
long task running) and the screen bar above the footer (the F-keys, the current screen lit)."""

from __future__ import annotations

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from lwlocal.models.catalogue import CARDS, local_file
from lwlocal.tui.state import TuiState

GIB = 2**30
SCREEN_KEYS = (("f1", "Help", None), ("f2", "Model", "model"), ("f3", "Compose", "compose"),
               ("f4", "Outline", "outline"), ("f5", "Writing", "writing"),
               ("f6", "Library", "library"))


def downloaded(model: str) -> bool:
    """Whether a model (card name or GGUF path) has its file here."""
    card = CARDS.get(model)
    return local_file(card) is not None if card else True


class StatusBar(Static):
    """What the screen is about (the job on the Writing screen, else the compose form): model,
    target words, mode, and the context and RAM of the loaded model; on the right the long
    task running, or the job paused. The model's name gives way first when it is narrow."""

    def show(self, state: TuiState, mode: str) -> None:
        job = state.job if mode == "writing" else None
        settings = job.meta.settings if job is not None else state.settings()
        model = str(settings.model or state.model)
        name = Text(model, style="b")
        if not downloaded(model):
            name.append(" (not downloaded)", style="red")
        figures = [f"{settings.words:,} words", settings.mode]
        session = state.session
        if session is not None and session.settings.model == model and session.chat.n_ctx:
            figures.append(f"ctx {session.chat.n_ctx:,}")
            if session.memory_plan is not None:
                figures.append(f"RAM {session.memory_plan.memory.ram_bytes / GIB:.1f} GiB")
        rest, run = Text("".join(f" · {f}" for f in figures)), _run(state)
        room = self.app.size.width - 2  # the bar's padding
        name.truncate(max(room - rest.cell_len - run.cell_len, 1), overflow="ellipsis")
        grid = Table.grid(expand=True)
        grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        grid.add_column(justify="right", no_wrap=True)
        grid.add_row(Text.assemble(name, rest), run)
        self.update(grid)


def _run(state: TuiState) -> Text:
    """The long task running (or the job on screen paused), for the status bar's right."""
    if state.task is not None:
        what = state.job_state() if state.writing else "outlining"
        return Text(f" ● {what}", style="yellow")
    return Text(" ‖ paused", style="yellow") if state.job_state() == "paused" else Text()


class ScreenBar(Static):
    """The screens and their keys (each one a link), the current one lit."""

    def show(self, current: str) -> None:
        self.update(self.text(current))

    @staticmethod
    def text(current: str) -> RenderableType:
        items = []
        for key, label, mode in SCREEN_KEYS:
            action = "app.help" if mode is None else f"app.switch_mode('{mode}')"
            style = "reverse b" if mode == current else ""
            item = f"[@click={action}][b]{key.upper()}[/b] {label}[/]"
            items.append(f"[{style}] {item} [/]" if style else f" {item} ")
        return "".join(items)
