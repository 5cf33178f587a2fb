"""Outline editor: the planned sections as an editable list (main point, word budget), added,
deleted (and undeleted) and reordered by keys, with the running total against the target; then
write. Titles and main points are shown as text, brackets and all; every change is kept in
the draft."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Input, Label

from lwlocal.tui.guard import guarded
from lwlocal.tui.screens.base import AppScreen
from lwlocal.tui.screens.compose import ComposeScreen
from lwlocal.tui.widgets.section_editor import SectionEditor
from lwlocal.write.outline import Outline, Section

MOVE = Binding.Group("Move", compact=True)
NEW_SECTION_WORDS = 200


class OutlineScreen(AppScreen):
    MODE = "outline"
    AUTO_FOCUS = "#sections"
    # ctrl+w and Esc are the screen's even inside the fields (an Input deletes a word on ctrl+w)
    BINDINGS = [Binding("ctrl+w", "write", "Write", priority=True),
    # (short descriptions: every key fits in the footer at 80 columns)
                Binding("escape", "leave_field", "List"),
                Binding("a", "add", "Add"), Binding("delete,x", "delete", "Delete"),
                Binding("u", "undo", "Undo"),
                Binding("ctrl+up", "move(-1)", "Move up", group=MOVE),
                Binding("ctrl+down", "move(1)", "Move down", group=MOVE),
                Binding("ctrl+r", "regenerate", "Redraft")]

    def body(self) -> ComposeResult:
        yield Label("", id="outline-total")
        yield DataTable(id="sections", cursor_type="row", zebra_stripes=True)
        yield SectionEditor(id="section-editor")

    def on_mount(self) -> None:
        self._deleted: tuple[int, Section] | None = None  # the last deleted section, for undo
        self.query_one(DataTable).add_columns("#", "words", "title", "main point")
        self.refresh_outline()

    @property
    def outline(self) -> Outline | None:
        return self.lw.state.outline

    @guarded
    def on_screen_resume(self) -> None:
        self.refresh_outline()

    def refresh_outline(self, row: int | None = None) -> None:
        table = self.query_one(DataTable)
        keep = table.cursor_row if row is None else row
        table.clear()
        outline = self.outline
        if outline is None:
            self.query_one("#outline-total", Label).update(
                "No outline yet: compose a prompt and plan it (F3).")
            self.query_one(SectionEditor).edit(None)
            return
        for i, s in enumerate(outline.sections, 1):
            table.add_row(str(i), str(s.words), Text(s.title), Text(s.main_point))
        if outline.sections:
            table.move_cursor(row=min(max(keep, 0), len(outline.sections) - 1))
        self._show_total()
        self.query_one(SectionEditor).edit(self._current())

    def _show_total(self) -> None:
        outline = self.outline
        if outline is None:
            return
        planned = outline.planned_words
        off = planned - outline.words
        colour = "green" if abs(off) <= outline.words * 0.1 else "yellow"
        self.query_one("#outline-total", Label).update(
            f"{len(outline.sections)} sections · planned [{colour}]{planned:,}[/] of "
            f"{outline.words:,} target words")

    def _current(self) -> Section | None:
        row = self.query_one(DataTable).cursor_row
        if self.outline and 0 <= row < len(self.outline.sections):
            return self.outline.sections[row]
        return None

    @on(DataTable.RowHighlighted, "#sections")
    @guarded
    def _highlighted(self) -> None:
        self.query_one(SectionEditor).edit(self._current())

    @on(SectionEditor.Edited)
    @guarded
    def _edited(self, event: SectionEditor.Edited) -> None:
        table = self.query_one(DataTable)
        row = table.cursor_row
        for column, value in ((1, str(event.section.words)), (2, Text(event.section.title)),
                              (3, Text(event.section.main_point))):
            table.update_cell_at(Coordinate(row, column), value)
        self._show_total()
        self.lw.keep_draft()

    def action_leave_field(self) -> None:
        """Esc: from a field back to the list of sections."""
        self.query_one(DataTable).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Esc only inside a field; undo only after a delete."""
        if action == "leave_field":
            return isinstance(self.focused, Input)
        if action == "undo":
            return self._deleted is not None
        return True

    @guarded
    def action_add(self) -> None:
        """A new section after the highlighted one, its title ready to be typed over."""
        if self.outline is None:
            return
        row = self.query_one(DataTable).cursor_row + 1
        self.outline.sections.insert(row, Section("New section", "", NEW_SECTION_WORDS))
        self.refresh_outline(row)
        self.query_one(SectionEditor).begin()
        self.lw.keep_draft()

    @guarded
    def action_delete(self) -> None:
        if self.outline and len(self.outline.sections) > 1:
            row = self.query_one(DataTable).cursor_row
            self._deleted = (row, self.outline.sections.pop(row))
            self.refresh_outline(row)
            self.refresh_bindings()
            self.lw.keep_draft()
            self.notify(f"deleted “{self._deleted[1].title}”: u puts it back")

    @guarded
    def action_undo(self) -> None:
        if self.outline is not None and self._deleted is not None:
            row, section = self._deleted
            self._deleted = None
            self.outline.sections.insert(min(row, len(self.outline.sections)), section)
            self.refresh_outline(row)
            self.refresh_bindings()
            self.lw.keep_draft()

    @guarded
    def action_move(self, step: int) -> None:
        sections = self.outline.sections if self.outline else []
        row = self.query_one(DataTable).cursor_row
        if 0 <= row + step < len(sections):
            sections[row], sections[row + step] = sections[row + step], sections[row]
            self.refresh_outline(row + step)
            self.lw.keep_draft()

    @guarded
    def action_regenerate(self) -> None:
        """Draft the outline again from the Compose screen's settings."""
        self.app.switch_mode("compose")
        self.app.call_after_refresh(self._plan_again)

    def _plan_again(self) -> None:
        if isinstance(self.app.screen, ComposeScreen):
            self.app.screen.action_go()

    @guarded
    def action_write(self) -> None:
        if self.outline is not None:
            self.lw.start_writing()
