"""The sections of the job being written: done, being written or pending, with words written
of the words planned."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from lwlocal.write.outline import Outline

MARKS = {"done": ("✓", "green"), "writing": ("▶", "yellow b"), "paused": ("‖", "yellow"),
         "pending": ("·", "dim")}


class SectionList(Static):
    """One line per section: its mark, number, title and ``written/planned`` words (when
    they do not all fit, the lines around the current section)."""

    def show(self, outline: Outline | None, written: dict[int, int], finished: set[int],
             current: int | None, paused: bool = False) -> None:
        """``written``: words of each section that has some (1-based); ``current``: the
        section being written (or, ``paused``, stopped part-way)."""
        if outline is None:
            self.update("")
            return
        grid = Table.grid(expand=True, padding=(0, 1))
        grid.add_column(width=1)
        grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        grid.add_column(justify="right", no_wrap=True)
        shown = list(enumerate(outline.sections, 1))
        room = self.content_size.height
        if 0 < room < len(shown):  # not all fit: a window around the current section
            first = min(max(0, (current or 1) - 2), len(shown) - room)
            shown = shown[first:first + room]
        for i, section in shown:
            state = ("done" if i in finished else
                     ("paused" if paused else "writing") if i == current else "pending")
            mark, style = MARKS[state]
            words = f"{written.get(i, 0):,}/{section.words:,}"
            grid.add_row(Text(mark, style=style), Text(f"{i} {section.title}"),
                         Text(words, style="dim" if state == "pending" else ""))
        self.update(grid)
