"""The document as it is written: Markdown at a readable width, followed as it grows."""

from __future__ import annotations

from markdown_it import MarkdownIt
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Markdown
from textual.widgets.markdown import MarkdownStream


def text_markdown() -> MarkdownIt:
    """Markdown without HTML: a ``<tag>`` the model writes is shown as it is, not dropped."""
    return MarkdownIt("gfm-like", options_update={"html": False})


class DocumentView(VerticalScroll):
    """``show(text)`` replaces the document; ``append(text)`` streams onto its end. The view
    follows the end as the document grows, until the reader scrolls up (Textual's anchor);
    scrolling back to the end follows it again."""

    def compose(self) -> ComposeResult:
        yield Markdown(id="document", parser_factory=text_markdown)

    def on_mount(self) -> None:
        self._stream: MarkdownStream | None = None
        self.anchor()

    @property
    def source(self) -> str:
        return self.query_one(Markdown).source

    async def show(self, text: str) -> None:
        if self._stream is not None:
            await self._stream.stop()
            self._stream = None
        await self.query_one(Markdown).update(text)
        self.anchor()

    async def append(self, text: str) -> None:
        if self._stream is None:
            self._stream = Markdown.get_stream(self.query_one(Markdown))
        await self._stream.write(text)
