"""What every main screen of the app shares: the app and its state, typed, and the frame of
bars around the screen's own widgets."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual import events, on
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer

from lwlocal.tui.guard import guarded
from lwlocal.tui.widgets.bars import ScreenBar, StatusBar

if TYPE_CHECKING:
    from lwlocal.tui.app import LwlocalApp


class AppScreen(Screen[None]):
    """A main screen of the lwlocal app: the status bar, :meth:`body`, the screen bar and the
    footer (which shows the screen's own keys; the screen bar shows the F-keys)."""

    MODE: ClassVar[str] = ""

    @property
    def lw(self) -> LwlocalApp:
        """The app, with its own state and actions."""
        return cast("LwlocalApp", self.app)

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status-bar")
        yield from self.body()
        yield ScreenBar(id="screen-bar")
        yield Footer()

    def body(self) -> ComposeResult:
        """The screen's own widgets."""
        yield from ()

    @on(events.ScreenResume)
    @guarded
    def _show_bars(self) -> None:
        self.query_one(ScreenBar).show(self.MODE)
        self.query_one(StatusBar).show(self.lw.state, self.MODE)
