"""One job on screen, one state for it: the dashboard, the status bar, the library and the
command palette read it from the app's state, so they agree; Words follows the prompt until the
user sets it, whatever screens were visited; a second job is never started while one is being
written."""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input, Label, TextArea

from lwlocal.tui.app import LwlocalApp
from lwlocal.tui.screens.compose import ComposeScreen
from lwlocal.tui.screens.confirm import ConfirmScreen
from lwlocal.tui.screens.export import ExportScreen
from lwlocal.tui.screens.model import ModelScreen
from lwlocal.tui.screens.writing import WritingScreen
from lwlocal.write.journal import Job, list_jobs
from lwlocal.write.settings import JobSettings
from tests.support.fake_chat import FakeChat
from tests.support.tui_pilot import (
    CARD,
    PROMPT,
    fake_app,
    notes,
    outline,
    run,
    screen_text,
    section_words,
    widget_text,
)


def status(app: LwlocalApp) -> str:
    return screen_text(app).splitlines()[0]


def job_title(app: LwlocalApp) -> str:
    return widget_text(app, "#job-title").strip()


async def palette(pilot: Pilot[None], title: str) -> None:
    """Run the command palette's command ``title``, and let the app handle what it posted."""
    commands = {c.title: c.callback for c in pilot.app.get_system_commands(pilot.app.screen)}
    assert title in commands, sorted(commands)
    await commands[title]()
    await pilot.pause()


def saved_job(root: Any, name: str, words: int) -> Job:
    job = Job.create(root, JobSettings(PROMPT, words, model="smollm2-135m"), name=name)
    job.save_outline(outline(words, 1))
    job.update(state="outlined")
    return job


# 2. Words follows the prompt after a visit to the Model screen and after planning

def test_words_follows_the_prompt_after_the_model_screen_and_planning(tmp_path, messages):
    app = fake_app(tmp_path, FakeChat(), model=CARD, prompt="")

    async def test() -> None:
        async with app.run_test(size=(80, 24), message_hook=messages) as pilot:
            await pilot.press(*"Write a 300-word note on tea.")
            await pilot.press("f2")
            await messages.wait(pilot, ModelScreen.Planned)
            await pilot.press("f3")
            app.screen.query_one("#prompt", TextArea).text = "Write 700 words on tea."
            await pilot.pause()
            words = app.screen.query_one("#words", Input)
            source = app.screen.query_one("#words-source", Label)
            assert (words.value, str(source.render())) == ("700", "from prompt")
            assert app.state.words is None
            app.state.model = "smollm2-135m"
            await pilot.press("ctrl+g")
            await messages.wait(pilot, ComposeScreen.Outlined)
            await pilot.press("f3")
            app.screen.query_one("#prompt", TextArea).text = "Write 500 words on tea."
            await pilot.pause()
            assert (words.value, str(source.render())) == ("500", "from prompt")
            assert "500 words" in status(app)

    run(test)


# 3. ctrl+w while a job is being written starts nothing

def test_ctrl_w_while_writing_starts_no_second_job(tmp_path, messages):
    chat = FakeChat(paced=True)
    app = fake_app(tmp_path, chat, outline=outline(300, 3))

    async def test() -> None:
        async with app.run_test(size=(80, 24), message_hook=messages) as pilot:
            await pilot.press("f4", "ctrl+w")
            chat.release(5)
            await messages.wait(pilot, WritingScreen.Update, section_words(messages, 5))
            first = app.state.job
            await pilot.press("f4", "ctrl+w")
            assert app.current_mode == "outline" and app.state.job is first
            assert any("is still running" in n for n in notes(app)), notes(app)
            await pilot.press("f5")
            assert "Starting a new job" not in screen_text(app)
            assert first is not None and first.id in job_title(app)
            await pilot.press("p")
            await messages.wait(pilot, WritingScreen.Stopped)
            assert len(list(list_jobs(tmp_path / "jobs"))) == 1

    run(test)


# 5. the status bar, the dashboard and the library agree with the job

def test_another_job_opened_after_a_pause_is_not_shown_paused(tmp_path, messages):
    chat = FakeChat(paced=True)
    app = fake_app(tmp_path, chat, words=300)
    other = saved_job(tmp_path / "jobs", "a-other", 120)
    saved_job(tmp_path / "jobs", "b-first", 90)  # listed first: newest, or the name after

    async def test() -> None:
        async with app.run_test(size=(80, 24), message_hook=messages) as pilot:
            await pilot.press("f6", "r")
            chat.release(5)
            await messages.wait(pilot, WritingScreen.Update, section_words(messages, 5))
            assert "90 words" in status(app) and "● writing" in status(app)
            await pilot.press("p")
            await messages.wait(pilot, WritingScreen.Stopped)
            assert "· paused ·" in job_title(app) and "‖ paused" in status(app)
            await pilot.press("f6", "down", "o")
            assert app.state.job is not None and app.state.job.dir == other.dir
            assert job_title(app).startswith("a-other · outlined")
            assert "paused" not in status(app) and "120 words" in status(app)
            mark = messages.mark()
            await pilot.press("r")
            chat.release(3)
            await messages.wait(pilot, WritingScreen.Update, section_words(messages, 3),
                                since=mark)
            assert job_title(app).startswith("a-other · writing")
            assert "120 words" in status(app) and "● writing" in status(app)
            await pilot.press("p")
            await messages.wait(pilot, WritingScreen.Stopped, since=mark)

    run(test)


def test_a_cancelled_job_is_cancelled_and_c_cancels_a_paused_one(tmp_path, messages):
    chat = FakeChat(paced=True)
    app = fake_app(tmp_path, chat)
    saved_job(tmp_path / "jobs", "paused", 90)
    saved_job(tmp_path / "jobs", "written", 90)

    async def test() -> None:
        async with app.run_test(size=(80, 24), message_hook=messages) as pilot:
            await pilot.press("f6", "r")  # "written": cancelled while being written
            chat.release(5)
            await messages.wait(pilot, WritingScreen.Update, section_words(messages, 5))
            await pilot.press("c", "y")
            await messages.wait(pilot, WritingScreen.Stopped)
            assert app.current_mode == "library"
            assert "written" in screen_text(app) and "cancelled" in screen_text(app)
            mark = messages.mark()
            await pilot.press("down", "r")  # "paused": paused, then cancelled
            chat.release(3)
            await messages.wait(pilot, WritingScreen.Update, section_words(messages, 3),
                                since=mark)
            await pilot.press("p")
            await messages.wait(pilot, WritingScreen.Stopped, since=mark)
            await pilot.press("c")
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("y")
            assert app.current_mode == "library"
            rows = [line for line in screen_text(app).splitlines() if "interrupted" in line
                    or "cancelled" in line]
            assert len(rows) == 2 and all("cancelled" in row for row in rows), rows
            assert "2 jobs, newest first" in screen_text(app)

    run(test)


def test_a_finished_job_reads_100_percent_and_one_job_is_one(tmp_path, messages):
    app = fake_app(tmp_path, FakeChat())
    saved_job(tmp_path / "jobs", "tea", 60)

    async def test() -> None:
        async with app.run_test(size=(80, 24), message_hook=messages) as pilot:
            await pilot.press("f6", "r")
            await messages.wait(pilot, WritingScreen.Stopped, lambda m: m.finished)
            for bar in ("#section-bar", "#document-bar"):
                assert widget_text(app, bar).rstrip().endswith("100%"), widget_text(app, bar)
            await pilot.press("f6")
            assert "1 job, newest first" in screen_text(app)

    run(test)


# 6. the command palette has the job's actions

def test_the_palette_pauses_resumes_exports_cancels_and_opens_the_folder(tmp_path, messages,
                                                                        monkeypatch):
    chat = FakeChat(paced=True)
    app = fake_app(tmp_path, chat, outline=outline(300, 3))
    opened: list[str] = []
    monkeypatch.setattr(app, "open_url", lambda url, **kw: opened.append(url))

    async def test() -> None:
        async with app.run_test(size=(80, 24), message_hook=messages) as pilot:
            titles = {c.title for c in app.get_system_commands(app.screen)}
            assert "Pause writing" not in titles and "Export the job…" not in titles
            await pilot.press("f4", "ctrl+w")
            chat.release(5)
            await messages.wait(pilot, WritingScreen.Update, section_words(messages, 5))
            await pilot.press("f3")
            await palette(pilot, "Pause writing")
            await messages.wait(pilot, WritingScreen.Stopped)
            assert app.current_mode == "writing" and app.state.job_state() == "paused"
            await palette(pilot, "Open the job folder")
            job = app.state.job
            assert job is not None and opened == [job.dir.as_uri()]
            assert f"job folder: {job.dir}" in notes(app)
            mark = messages.mark()
            await palette(pilot, "Resume the job")
            chat.release(150)  # section 1 to its end, and some of section 2
            await messages.wait(pilot, WritingScreen.Update,
                                lambda m: m.event.step == 2, since=mark)
            await palette(pilot, "Cancel the job…")
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("y")
            await messages.wait(pilot, WritingScreen.Stopped, since=mark)
            await pilot.press("f5")
            await palette(pilot, "Export the job…")
            assert isinstance(app.screen, ExportScreen)

    run(test)


def test_the_library_leaves_the_job_being_written_alone(tmp_path, messages):
    chat = FakeChat(paced=True)
    app = fake_app(tmp_path, chat)
    saved_job(tmp_path / "jobs", "a-other", 90)
    written = saved_job(tmp_path / "jobs", "b-first", 90)

    async def test() -> None:
        async with app.run_test(size=(80, 24), message_hook=messages) as pilot:
            await pilot.press("f6", "r")
            chat.release(5)
            await messages.wait(pilot, WritingScreen.Update, section_words(messages, 5))
            await pilot.press("f6", "r")  # the job being written: shown, not started again
            assert app.current_mode == "writing"
            await pilot.press("f6", "down", "o")  # another: not while this one is written
            assert app.current_mode == "library"
            assert "b-first is being written: pause it first (p on the Writing screen)" in (
                notes(app))
            assert app.state.job is not None and app.state.job.dir == written.dir
            await pilot.press("f5", "p")
            await messages.wait(pilot, WritingScreen.Stopped)
            assert app.state.task is None and app.state.job_state() == "paused"
            assert len(chat.model.requests) == 1  # written once, never resumed on its own

    run(test)
