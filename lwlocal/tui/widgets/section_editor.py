"""The fields of one outline section: title, main point, word budget."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Grid
from textual.message import Message
from textual.widgets import Input, Label

from lwlocal.write.outline import Section


class SectionEditor(Grid):
    """Edits the section it is given; posts :class:`SectionEditor.Edited` on every change."""

    class Edited(Message):
        def __init__(self, section: Section) -> None:
            super().__init__()
            self.section = section

    def compose(self) -> ComposeResult:
        yield Label("Title")
        yield Input(id="section-title", placeholder="the section's title")
        yield Label("Main point")
        yield Input(id="section-point", placeholder="what this section says, in a sentence")
        yield Label("Words")
        yield Input(type="integer", id="section-words")

    def begin(self) -> None:
        """Put the cursor in the title, selected, for a new section to be named."""
        title = self.query_one("#section-title", Input)
        title.focus()
        title.select_all()

    def edit(self, section: Section | None) -> None:
        self._section = None  # no Edited messages while the fields are filled
        for field, value in (("title", section.title if section else ""),
                             ("point", section.main_point if section else ""),
                             ("words", str(section.words) if section else "")):
            widget = self.query_one(f"#section-{field}", Input)
            with widget.prevent(Input.Changed):
                widget.value = value
        self._section = section

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        section = getattr(self, "_section", None)
        if section is None:
            return
        section.title = self.query_one("#section-title", Input).value
        section.main_point = self.query_one("#section-point", Input).value
        words = self.query_one("#section-words", Input).value
        if words.isdigit() and int(words) > 0:
            section.words = int(words)
        self.post_message(self.Edited(section))
