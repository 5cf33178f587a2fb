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
    """``show(text)`` replaces the document; ``append(text)`` streams onto its end. Once the
    document is taller than the view, the view follows its end as it grows, until the reader
    scrolls up (Textual's anchor); scrolling back to the end follows it again. (Anchored
    sooner, Textual would draw a short document at the bottom of the view.)"""

    def compose(self) -> ComposeResult:
        yield Markdown(id="document", parser_factory=text_markdown)

    def on_mount(self) -> None:
        self._stream: MarkdownStream | None = None

    @property
    def source(self) -> str:
        return self.query_one(Markdown).source

    async def show(self, text: str) -> None:
        if self._stream is not None:
            await self._stream.stop()
            self._stream = None
        self.anchor(False)
        await self.query_one(Markdown).update(text)
        self.scroll_home(animate=False, immediate=True)
        self.call_after_refresh(self._follow)

    async def append(self, text: str) -> None:
        if self._stream is None:
            self._stream = Markdown.get_stream(self.query_one(Markdown))
        await self._stream.write(text)
        self.call_after_refresh(self._follow)

    def _follow(self) -> None:
        if not self.is_anchored and self.max_scroll_y > 0:
            self.anchor()
