"""Driving the terminal app with Textual's pilot: the app over a fake model that the test paces
(tests/support/fake_chat.py), waits for the app's own messages (never for time), and what the
terminal shows."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console
from textual.message import Message
from textual.pilot import Pilot

from lwlocal.memory.hardware import Machine
from lwlocal.tui.app import LwlocalApp
from lwlocal.tui.screens.writing import WritingScreen
from lwlocal.tui.state import TuiState
from lwlocal.write.outline import Outline, Section
from tests.support.fake_chat import FakeChat, FakeSession

PROMPT = "Write a short guide to brewing green tea at home."
GUARD = 600  # seconds: a message that has not come by then is not coming
GIB = 2**30
MACHINE = Machine(ram_total=16 * GIB, ram_available=12 * GIB, vram_total=0, vram_free=0,
                  gpu=None, unified=False, cores=4, threads=8)
CARD = "longwriter-llama3.1-8b"  # a card that is not downloaded: planned from its card, fast
M = TypeVar("M", bound=Message)


class Messages:
    """Every message the app dispatches (Textual's ``message_hook``), to wait for the ones a
    test needs."""

    def __init__(self) -> None:
        self.seen: list[Message] = []
        self._arrived: asyncio.Event | None = None

    def __call__(self, message: Message) -> None:
        self.seen.append(message)
        if self._arrived is not None:
            self._arrived.set()

    def mark(self) -> int:
        """Where the messages to come begin."""
        return len(self.seen)

    async def wait(self, pilot: Pilot, kind: type[M], where: Callable[[M], bool] = lambda m: True,
                   since: int = 0) -> M:
        """The first ``kind`` message (from ``since``) for which ``where`` holds, once the app
        has handled it."""
        self._arrived = self._arrived or asyncio.Event()

        async def first() -> M:
            checked = since
            while True:
                for message in self.seen[checked:]:
                    if isinstance(message, kind) and where(message):
                        return message
                checked = len(self.seen)
                assert self._arrived is not None
                self._arrived.clear()
                await self._arrived.wait()

        found = await asyncio.wait_for(first(), GUARD)
        await pilot.pause()
        return found


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


def screen_text(app: LwlocalApp) -> str:
    """What the terminal shows, as plain text."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True,
                      force_terminal=True, color_system="truecolor", legacy_windows=False)
    console.print(app.screen._compositor.render_update(
        full=True, screen_stack=app._background_screens))
    return console.export_text(styles=False)


def widget_text(app: LwlocalApp, selector: str) -> str:
    """What the terminal shows where a widget is."""
    region = app.screen.query_one(selector).region
    lines = screen_text(app).splitlines()[region.y:region.bottom]
    return "\n".join(line[region.x:region.right] for line in lines)


def notes(app: LwlocalApp) -> list[str]:
    return [n.message for n in app._notifications]


def outline(words: int = 300, sections: int = 3) -> Outline:
    each = words // sections
    return Outline(PROMPT, words, [Section(f"Part {i}", f"What part {i} says", each)
                                   for i in range(1, sections + 1)])


def fake_app(tmp_path: Path, chat: FakeChat, **state: Any) -> LwlocalApp:
    """The app over a fake model; ``state``: TuiState fields."""
    state.setdefault("prompt", PROMPT)
    state.setdefault("machine", MACHINE)
    return LwlocalApp(TuiState(jobs_root=tmp_path / "jobs",
                               new_session=lambda settings: FakeSession(settings, chat),
                               **state))


def writing(app: LwlocalApp) -> WritingScreen:
    screen = app.get_screen_stack("writing")[0]
    assert isinstance(screen, WritingScreen)
    return screen


def section_words(messages: Messages, words: int) -> Callable[[WritingScreen.Update], bool]:
    return lambda m: m.event.stage == "write" and m.event.done >= words
