"""The app's two bars: the status bar at the top (model, length, loaded context and memory, the
long task running) and the screen bar above the footer (the F-keys, the current screen lit)."""

from __future__ import annotations

from rich.console import RenderableType
from rich.markup import escape
from rich.table import Table
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
    """model · target words · mode · context and RAM of the loaded model, and on the right the
    long task running."""

    def show(self, state: TuiState) -> None:
        parts = [f"[b]{escape(state.model)}[/b]" + ("" if downloaded(state.model)
                                                   else " [red](not downloaded)[/]"),
                 f"{state.target.words:,} words", state.mode]
        session = state.session
        if session is not None and session.settings.model == state.model and session.chat.n_ctx:
            parts.append(f"ctx {session.chat.n_ctx:,}")
            if session.memory_plan is not None:
                parts.append(f"RAM {session.memory_plan.memory.ram_bytes / GIB:.2f} GiB")
        grid = Table.grid(expand=True)
        grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        grid.add_column(justify="right", no_wrap=True)
        task = f"[yellow]● {escape(state.task.what)}[/]" if state.task else ""
        grid.add_row(" · ".join(parts), task)
        self.update(grid)


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
