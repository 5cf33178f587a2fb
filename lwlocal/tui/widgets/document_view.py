"""The document as it is written: Markdown at a readable width, followed as it grows."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Markdown
from textual.widgets.markdown import MarkdownStream


class DocumentView(VerticalScroll):
    """``show(text)`` replaces the document; ``append(text)`` streams onto its end and keeps
    the end in view (unless the reader scrolled up)."""

    def compose(self) -> ComposeResult:
        yield Markdown(id="document")

    def on_mount(self) -> None:
        self._stream: MarkdownStream | None = None

    @property
    def source(self) -> str:
        return self.query_one(Markdown).source

    async def show(self, text: str) -> None:
        if self._stream is not None:
            await self._stream.stop()
            self._stream = None
        await self.query_one(Markdown).update(text)
        self.scroll_end(animate=False)

    async def append(self, text: str) -> None:
        if self._stream is None:
            self._stream = Markdown.get_stream(self.query_one(Markdown))
        following = self.scroll_y >= self.max_scroll_y - 1
        await self._stream.write(text)
        if following:
            self.scroll_end(animate=False)
