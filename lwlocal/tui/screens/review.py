"""A job's review (:mod:`lwlocal.write.review`): a row a section, the totals, and the sections
worth writing again; ``w`` (or Enter) on a row writes that section again."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from lwlocal.write.review import summary_line

COLUMNS = ("#", "title", "planned", "written", "talk", "repeated", "garbled", "leaks",
           "repaired", "")


class ReviewScreen(ModalScreen[int | None]):
    """Dismissed with the section to write again, or None."""

    BINDINGS = [("escape", "dismiss(None)", "Close"), ("w", "rewrite", "Write again")]

    def __init__(self, review: dict[str, Any]) -> None:
        super().__init__()
        self.review = review

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="review"):
            yield Static(Text(summary_line(self.review)), id="review-summary")
            yield DataTable(cursor_type="row", zebra_stripes=True, id="review-table")
            worth = self.review["rewrite"]
            hint = (f"worth writing again: {', '.join(map(str, worth))} · " if worth else "")
            yield Static(Text(f"{hint}w or Enter writes the section again · Esc closes"),
                         id="review-hint")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns(*COLUMNS)
        for s in self.review["sections"]:  # titles are the model's text: never markup
            table.add_row(
                str(s["index"]), Text(s["title"]), "" if s["planned"] is None else str(
                    s["planned"]), str(s["written"]), str(s["talk"]), str(s["repeated"]),
                str(s["garbled"]), str(s["boundary"] + s["quote"] + s["title_repeated"]),
                str(sum(s["repaired"].values())), "rewrite" if s["rewrite"] else "",
                key=str(s["index"]))
        worth = self.review["rewrite"]
        if worth:
            table.move_cursor(row=[s["index"] for s in self.review["sections"]].index(worth[0]))
        table.focus()

    @on(DataTable.RowSelected)
    def action_rewrite(self) -> None:
        table = self.query_one(DataTable)
        if table.row_count:
            self.dismiss(self.review["sections"][table.cursor_row]["index"])
