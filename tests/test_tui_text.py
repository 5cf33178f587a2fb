"""Text the user types or the model writes is shown as text, never read as markup: square
brackets (Rich/Textual markup), a closing tag with no opening one, ``<tag>`` (HTML in the
Markdown document) and unbalanced brackets survive every field, are shown, are kept in the
app's state and reach the job."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable, Input, Markdown, Select

from lwlocal.tui.app import LwlocalApp
from lwlocal.tui.screens.export import ExportScreen
from lwlocal.tui.screens.writing import WritingScreen
from lwlocal.tui.state import TuiState
from lwlocal.write.journal import Job
from lwlocal.write.outline import Outline, Section
from lwlocal.write.settings import JobSettings
from tests.support.fake_chat import FakeChat, FakeSession
from tests.support.scripted_chat import ScriptedChat
from tests.support.tui_pilot import MACHINE, PROMPT, fake_app, notes, outline, run, screen_text

ODD = "[b]x [/] [link=x]y <tag> [open] shut] [z"  # each a crash or a vanishing before
MODEL = "[b]odd]x[.gguf"  # a model file's name, brackets and all


def shown(app: LwlocalApp, text: str) -> bool:
    """Whether the terminal shows ``text`` whole, on one line."""
    return any(text in line for line in screen_text(app).splitlines())


def test_brackets_typed_into_the_prompt_and_the_outline_are_kept_and_written(tmp_path,
                                                                             messages):
    app = fake_app(tmp_path, FakeChat(), prompt="", outline=outline(300, 3))

    async def test() -> None:
        async with app.run_test(size=(120, 40), message_hook=messages) as pilot:
            await pilot.press(*ODD)  # the prompt has the focus
            assert app.state.prompt == ODD
            await pilot.press("f4")
            title = app.screen.query_one("#section-title", Input)
            title.focus()
            title.clear()
            await pilot.press(*ODD)
            app.screen.query_one("#section-point", Input).focus()
            await pilot.press("end", " ", *ODD)
            await pilot.pause()
            first = app.state.outline.sections[0]
            assert (first.title, first.main_point) == (ODD, f"What part 1 says {ODD}")
            table = app.screen.query_one(DataTable)
            assert {ODD, first.main_point} <= {str(c) for c in table.get_row_at(0)}
            assert shown(app, ODD)
            await pilot.press("escape", "a")  # a new section after it, typed over
            await pilot.press(*ODD)
            await pilot.press("escape", "x")  # and deleted: the note names it as typed
            assert any(ODD in note for note in notes(app)), notes(app)
            await pilot.press("ctrl+w")
            await messages.wait(pilot, WritingScreen.Stopped, lambda m: m.finished)
            job = app.state.job
            assert job is not None and job.meta.settings.prompt == ODD
            written = job.outline()
            assert written is not None and written.sections[0].title == ODD
            assert written.sections[0].main_point == f"What part 1 says {ODD}"
            assert f"## {ODD}" in app.screen.query_one(Markdown).source
            assert shown(app, "✓ 1 [b]x [/] [link=x]y")  # the section list
            app.screen.query_one("#document-view").scroll_home(animate=False)
            await pilot.pause()
            assert shown(app, ODD)  # the document's heading

    run(test)


def test_brackets_the_model_writes_are_shown(tmp_path, messages):
    reply = f"The model wrote {ODD} here, and <b>more</b> on."
    app = LwlocalApp(TuiState(jobs_root=tmp_path / "jobs", prompt=PROMPT, machine=MACHINE,
                              new_session=lambda s: FakeSession(s, ScriptedChat([reply]))))
    job = Job.create(tmp_path / "jobs", JobSettings(PROMPT, 12, model=MODEL), name="odd")
    job.save_outline(Outline(PROMPT, 12, [Section(f"1. Step 1: [Section 1] {ODD}", "x", 12)]))
    job.update(state="outlined")

    async def test() -> None:
        async with app.run_test(size=(120, 40), message_hook=messages) as pilot:
            await pilot.press("f6")
            assert shown(app, MODEL)  # the library's model column
            await pilot.press("r")
            await messages.wait(pilot, WritingScreen.Stopped, lambda m: m.finished)
            for _ in range(3):
                await pilot.pause()
            assert shown(app, ODD) and shown(app, "<b>more</b>"), screen_text(app)
            assert shown(app, "[Section 1]")
            assert shown(app, MODEL)  # the status bar speaks for the job on screen
            await pilot.press("e")
            assert isinstance(app.screen, ExportScreen)
            path = app.screen.query_one("#export-path", Input)
            path.focus()
            path.clear()
            await pilot.press(*str(tmp_path / "[b]nowhere" / "x.md"), "enter")
            error = str(app.screen.query_one("#export-error").render())
            assert "[b]nowhere" in error
            path.clear()
            app.screen.query_one("#export-format", Select).value = "txt"  # no file to rename
            await pilot.pause()
            assert path.value == "" and isinstance(app.screen, ExportScreen)
            await pilot.press(*str(tmp_path / "[b]odd[.txt"), "enter")
            assert ODD in Path(tmp_path / "[b]odd[.txt").read_text()

    run(test)


def test_a_model_name_with_brackets_is_shown(tmp_path):
    app = fake_app(tmp_path, FakeChat(), model=MODEL)

    async def test() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            assert screen_text(app).splitlines()[0].startswith(f" {MODEL} · ")  # status bar
            assert shown(app, f"model {MODEL} · F2")  # the Compose form

    run(test)
