"""What every main screen of the app shares: the app and its state, typed."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.screen import Screen

if TYPE_CHECKING:
    from lwlocal.tui.app import LwlocalApp


class AppScreen(Screen[None]):
    """A main screen of the lwlocal app."""

    @property
    def lw(self) -> LwlocalApp:
        """The app, with its own state and actions."""
        return cast("LwlocalApp", self.app)
