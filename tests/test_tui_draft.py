"""What the user typed is never lost: the prompt and the outline are kept in a draft file as
they are edited and come back when the app starts again; an error the app did not expect, in
any handler, is a dialog and a line in the log, and the app goes on."""

from __future__ import annotations

from textual.widgets import Input, TextArea

import lwlocal.tui.screens.outline as outline_screen
from lwlocal.tui.app import LwlocalApp
from lwlocal.tui.draft import DRAFT_FILE
from lwlocal.tui.screens.failure import FailureScreen
from lwlocal.tui.state import TuiState
from lwlocal.write.length import DEFAULT_WORDS
from tests.support.fake_chat import FakeChat
from tests.support.tui_pilot import fake_app, outline, run, screen_text

TYPED = "Write 900 words on [b]tea[/] <now>."


def test_the_prompt_and_the_outline_come_back_on_the_next_start(tmp_path, lw_home):
    draft = tmp_path / "draft.json"
    first = fake_app(tmp_path, FakeChat(), prompt="", outline=outline(300, 3), draft=draft)

    async def edit() -> None:
        async with first.run_test(size=(80, 24)) as pilot:
            await pilot.press(*TYPED)
            await pilot.press("f4", "down", "x")  # Part 2 deleted
            title = first.screen.query_one("#section-title", Input)
            title.focus()
            title.clear()
            await pilot.press(*"[Steeping]")

    run(edit)
    again = LwlocalApp(TuiState(jobs_root=tmp_path / "jobs", draft=draft))

    async def check() -> None:
        async with again.run_test(size=(80, 24)) as pilot:
            assert again.screen.query_one("#prompt", TextArea).text == TYPED
            assert again.screen.query_one("#words", Input).value == "900"
            await pilot.press("f4")
            assert again.state.outline is not None
            assert [s.title for s in again.state.outline.sections] == ["Part 1", "[Steeping]"]
            assert "[Steeping]" in screen_text(again)

    run(check)
    assert LwlocalApp().state.draft == lw_home / DRAFT_FILE  # the app's own, by default


def test_an_error_in_a_handler_is_a_dialog_and_the_app_goes_on(tmp_path, monkeypatch):
    def broken(*args: object) -> None:
        raise RuntimeError("no new section today")

    monkeypatch.setattr(outline_screen, "Section", broken)
    draft, log = tmp_path / "draft.json", tmp_path / "tui.log"
    app = fake_app(tmp_path, FakeChat(), prompt="", outline=outline(300, 3), draft=draft,
                   log=log)

    async def test() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press(*TYPED, "f4", "a")
            assert isinstance(app.screen, FailureScreen)
            shown = " ".join(screen_text(app).split())
            assert "RuntimeError: no new section today" in shown
            assert "your prompt and outline are kept" in shown
            await pilot.press("escape", "f3")
            assert app.screen.query_one("#prompt", TextArea).text == TYPED

    run(test)
    assert "RuntimeError: no new section today" in log.read_text()
    assert "Traceback" in log.read_text()
    assert TYPED in draft.read_text(encoding="utf-8")


def test_a_prompt_whose_length_cannot_be_read_is_the_default_length(tmp_path):
    """A number of words too large to be a length (it overflowed the length reader once): the
    mode's default, and the app goes on without a dialog."""
    app = fake_app(tmp_path, FakeChat(), prompt="")

    async def test() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            prompt = app.screen.query_one("#prompt", TextArea)
            prompt.text = f"Write {'9' * 400} words."
            await pilot.pause()
            assert app.current_mode == "compose" and app.screen.query_one("#prompt") is prompt
            assert app.screen.query_one("#words", Input).value == str(
                DEFAULT_WORDS["agentwrite"])
            prompt.text = "Write 300 words."
            await pilot.pause()
            assert app.screen.query_one("#words", Input).value == "300"

    run(test)
