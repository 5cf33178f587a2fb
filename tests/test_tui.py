"""The terminal app driven by Textual's pilot. Most tests write with a fake chat backend that
the test paces word by word (tests/support/fake_chat.py); those marked ``model`` run the
default model. Every wait is for one of the app's own messages, never for time (a guard fails a
test whose message never comes)."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest
from rich.text import Text
from textual.widgets import DataTable, Footer, Input, Label, Markdown, Select, TextArea
from textual.widgets._footer import FooterKey

from lwlocal.memory.hardware import Machine
from lwlocal.tui.app import LwlocalApp
from lwlocal.tui.screens.compose import ComposeScreen
from lwlocal.tui.screens.confirm import ConfirmScreen
from lwlocal.tui.screens.export import ExportScreen
from lwlocal.tui.screens.help import HELP
from lwlocal.tui.screens.model import ModelScreen
from lwlocal.tui.screens.writing import WritingScreen
from lwlocal.tui.state import TuiState
from lwlocal.tui.widgets.task_line import TaskLine
from lwlocal.util.cpu import default_threads
from lwlocal.util.errors import LwlocalError
from lwlocal.util.progress import Progress
from lwlocal.util.samples import ENGLISH
from lwlocal.write import lookup_gain
from lwlocal.write.jobs import check_settings
from lwlocal.write.journal import Job, list_jobs
from lwlocal.write.length import DEFAULT_WORDS
from lwlocal.write.lookup_gain import choose
from lwlocal.write.outline import Outline, Section
from lwlocal.write.settings import JobSettings
from tests.support.bounds import HANG
from tests.support.fake_chat import FakeChat, FakeSession
from tests.support.lookup import keep_lookup_gain
from tests.support.tui_pilot import (
    CARD,
    GIB,
    MACHINE,
    PROMPT,
    fake_app,
    notes,
    outline,
    run,
    screen_text,
    section_words,
    widget_text,
    writing,
)

# 1. llama.cpp's output never touches the terminal; one plan worker at a time

@pytest.mark.model
def test_the_model_loads_and_plans_without_touching_the_terminal(tmp_path, lw_home, messages,
                                                                 monkeypatch):
    redirected: list[int] = []
    dup2 = os.dup2

    def spy(fd: int, fd2: int, *args: Any) -> int:
        if fd2 in (1, 2):
            redirected.append(fd2)
        return dup2(fd, fd2, *args)

    monkeypatch.setattr(os, "dup2", spy)
    # the outline waits after its first piece until the screen is read: however fast the
    # model writes, it is still outlining then
    hold = threading.Event()
    progress = ComposeScreen._progress

    def held(self: ComposeScreen, event: Progress) -> None:
        progress(self, event)
        if event.stage == "outline":
            assert hold.wait(HANG), "the test never let the outline go on"

    monkeypatch.setattr(ComposeScreen, "_progress", held)
    app = LwlocalApp(TuiState(jobs_root=tmp_path / "jobs", prompt=PROMPT, words=200,
                              threads=1))

    async def test() -> None:
        async with app.run_test(size=(80, 24), message_hook=messages) as pilot:
            before = screen_text(app)
            await pilot.press("ctrl+g")
            await messages.wait(pilot, ComposeScreen.Outlining,
                                lambda m: m.event.stage == "outline")
            for _ in range(500):  # the frame drawn with the message may come a few refreshes
                if "● outlining" in screen_text(app).split("\n", 1)[0]:  # later
                    break
                await pilot.pause()
            shown = screen_text(app).splitlines()  # loaded, generating, and drawn whole
            assert shown[0].startswith(" smollm2-135m · 200 words · agentwrite · ctx ")
            assert shown[0].rstrip().endswith("● outlining")
            for line in (1, 2, 3, -2):  # the form, the screen bar
                assert shown[line] == before.splitlines()[line]
            assert "drafting the outline:" in shown[-4] and "Cancel (Esc)" in shown[-4]
            assert "esc Cancel" in shown[-1]
            await pilot.press("escape")
            hold.set()
            await messages.wait(pilot, ComposeScreen.Outlined)
            assert screen_text(app).splitlines()[1:-1] == before.splitlines()[1:-1]
            assert "outline cancelled" in notes(app)

    run(test)
    assert not redirected, "file descriptors 1/2 were redirected while the app drew"
    assert "llama_model_loader" in (lw_home / "llama.log").read_text()


def test_the_model_screen_plans_once_and_one_at_a_time(tmp_path, messages, monkeypatch):
    import lwlocal.tui.screens.model as model_screen

    running, most, calls = [0], [0], []
    real = model_screen.model_plan

    def counted(model: str, settings: JobSettings, **kw: Any) -> Any:
        calls.append(settings.words)
        running[0] += 1
        most[0] = max(most[0], running[0])
        try:
            return real(model, settings, **kw)
        finally:
            running[0] -= 1

    monkeypatch.setattr(model_screen, "model_plan", counted)
    app = fake_app(tmp_path, FakeChat(), model=CARD, words=300)

    async def test() -> None:
        async with app.run_test(size=(80, 24), message_hook=messages) as pilot:
            await pilot.press("f2")
            await messages.wait(pilot, ModelScreen.Planned)
            assert calls == [300]
            words = app.screen.query_one("#model-words", Input)
            words.focus()
            await pilot.press("backspace", "backspace", "backspace", "6", "4", "0")
            await messages.wait(pilot, ModelScreen.Planned, lambda m: m.words == 640)
            assert most[0] == 1
            assert "640 words" in screen_text(app)

    run(test)


# 2. edits to Words are kept across screens; the Model screen agrees with its plan

def test_words_are_kept_across_screens_and_the_palette(tmp_path, messages):
    app = fake_app(tmp_path, FakeChat(), model=CARD, words=270)

    async def test() -> None:
        async with app.run_test(size=(80, 24), message_hook=messages) as pilot:
            words = app.screen.query_one("#words", Input)
            words.focus()
            await pilot.press("end", "backspace", "backspace", "backspace", "6", "4", "0")
            await pilot.press("ctrl+p")
            await pilot.press("escape")
            assert words.value == "640" and app.state.words == 640
            await pilot.press("f2")
            await messages.wait(pilot, ModelScreen.Planned, lambda m: m.words == 640)
            assert app.screen.query_one("#model-words", Input).value == "640"
            assert "640 words" in screen_text(app)
            await pilot.press("f3")
            assert app.screen.query_one("#words", Input).value == "640"
            app.state.model = "smollm2-135m"
            await pilot.press("ctrl+g")
            await messages.wait(pilot, ComposeScreen.Outlined)
            assert app.state.outline is not None and app.state.outline.words == 640

    run(test)


def test_the_length_follows_the_prompt_until_the_user_sets_it(tmp_path, messages):
    chat = FakeChat()
    app = fake_app(tmp_path, chat, model=CARD, prompt="")

    async def test() -> None:
        async with app.run_test(size=(80, 24), message_hook=messages) as pilot:
            words = app.screen.query_one("#words", Input)
            source = app.screen.query_one("#words-source", Label)
            await pilot.press(*"Write a 300-word note on tea.")
            await pilot.pause()
            assert app.state.prompt == "Write a 300-word note on tea.", app.state.prompt
            assert words.value == "300" and str(source.render()) == "from prompt"
            assert "300 words" in widget_text(app, "StatusBar")
            app.screen.query_one("#mode", Select).value = "direct"
            await pilot.pause()
            assert words.value == "300"  # still the prompt's
            app.screen.query_one("#prompt", TextArea).text = "Write about tea."
            await pilot.pause()
            assert words.value == str(DEFAULT_WORDS["direct"]) and str(source.render()) == "default"
            app.screen.query_one("#prompt", TextArea).text = "Write 900 words on tea."
            await pilot.pause()
            assert words.value == "900"
            words.focus()
            await pilot.press("end", "backspace", "backspace", "backspace", "4", "5", "0")
            assert str(source.render()) == ""
            app.screen.query_one("#prompt", TextArea).text = "Write 700 words on tea."
            await pilot.pause()
            assert words.value == "450"  # the user's, whatever the prompt says
            settings = app.state.settings()
            assert (settings.words, settings.words_source) == (450, "option")
            await pilot.press("end", *["backspace"] * 3)  # emptied: the prompt's again
            assert words.value == "" and str(source.render()) == "from prompt"
            assert app.state.settings().words == 700
            assert app.state.settings().words_source == "instruction"
            await pilot.press("tab")  # shown in the field once the user leaves it
            assert words.value == "700"

    run(test)


# 3. every long step can be cancelled; quitting stops generation at once

def test_planning_is_cancelled_by_esc_and_by_its_button(tmp_path, messages):
    chat = FakeChat(paced=True)
    app = fake_app(tmp_path, chat)

    async def test() -> None:
        async with app.run_test(size=(80, 24), message_hook=messages) as pilot:
            for stop in ("escape", "#cancel-task"):
                mark = messages.mark()
                await pilot.press("ctrl+g")
                await messages.wait(pilot, ComposeScreen.Outlining, since=mark)
                assert app.screen.query_one(TaskLine).display
                if stop == "escape":
                    await pilot.press("escape")
                else:
                    await pilot.click(stop)
                await messages.wait(pilot, ComposeScreen.Outlined, since=mark)
                assert app.state.task is None and app.state.outline is None
                assert not app.screen.query_one(TaskLine).display
            assert notes(app).count("outline cancelled") == 2

    run(test)


@pytest.mark.parametrize("step", ["outlining", "writing"])
def test_quitting_stops_generation_at_once(tmp_path, messages, step):
    chat = FakeChat(paced=True)
    app = fake_app(tmp_path, chat, outline=outline())

    async def test() -> None:
        async with app.run_test(size=(80, 24), message_hook=messages) as pilot:
            if step == "outlining":
                await pilot.press("ctrl+g")
                await messages.wait(pilot, ComposeScreen.Outlining)
            else:
                await pilot.press("f4", "ctrl+w")
                chat.release(5)
                await messages.wait(pilot, WritingScreen.Update, section_words(messages, 5))
            await pilot.press("ctrl+q")

    run(test)
    assert chat.returned.wait(2.0), "generation went on after the app quit"
    if step == "writing":
        job = next(list_jobs(tmp_path / "jobs"))
        assert job.state == "interrupted" and job.partial_text(1).split()[:5]


# 5. plans count the prompt; its evaluation shows progress; Advanced keeps the prompt in view

@pytest.mark.model
def test_a_long_prompt_is_planned_for_or_refused_clearly(tmp_path, messages):
    sample = ENGLISH.split()
    long_prompt = " ".join(sample[i % len(sample)] for i in range(6000))
    fitting = " ".join(sample[i % len(sample)] for i in range(3000))
    app = LwlocalApp(TuiState(jobs_root=tmp_path / "jobs", prompt=long_prompt, words=300,
                              machine=MACHINE))

    async def test() -> None:
        async with app.run_test(size=(80, 24), message_hook=messages) as pilot:
            await pilot.press("ctrl+g")
            done = await messages.wait(pilot, ComposeScreen.Outlined)
            assert done.error and "prompt" in done.error and "shorten" in done.error
            assert "--" not in done.error
            app.state.prompt = fitting
            await pilot.press("f2")
            planned = await messages.wait(pilot, ModelScreen.Planned,
                                          lambda m: m.plan is not None)
            assert planned.plan is not None
            from lwlocal.models.catalogue import resolve
            from lwlocal.runtime.engine import count_tokens
            prompt_tokens = count_tokens(resolve(None).path, fitting)
            assert planned.plan.settings.n_ctx >= prompt_tokens + 300

    run(test)


def test_prompt_evaluation_shows_progress_and_advanced_keeps_the_prompt_in_view(tmp_path,
                                                                                messages):
    chat = FakeChat(paced=True)
    app = fake_app(tmp_path, chat)

    async def test() -> None:
        async with app.run_test(size=(80, 24), message_hook=messages) as pilot:
            await pilot.click("Collapsible CollapsibleTitle")
            await pilot.press("ctrl+g")
            await messages.wait(pilot, ComposeScreen.Outlining)
            shown = screen_text(app)
            assert "reading the prompt:" in shown and "tokens" in shown
            prompt = app.screen.query_one("#prompt").region
            assert prompt.height >= 3 and prompt.y >= 1
            for part in ("#go", "#cancel-task", "#temperature"):
                region = app.screen.query_one(part).region
                assert region.height and region.bottom <= 22, part
            await pilot.press("escape")
            await messages.wait(pilot, ComposeScreen.Outlined)

    run(test)


def recording_app(tmp_path: Path) -> tuple[LwlocalApp, list[JobSettings]]:
    """The app over a fake model, with the settings of each session it makes."""
    chat = FakeChat()
    sessions: list[JobSettings] = []
    app = fake_app(tmp_path, chat)
    app.state.new_session = lambda settings: sessions.append(settings) or FakeSession(settings,
                                                                                     chat)
    return app, sessions


def test_speculation_is_set_in_advanced_and_refused_in_the_apps_words(tmp_path, messages):
    """Speculate lookup reaches the session's settings; over an f16 KV cache it is refused in
    one line naming the fields, and nothing is planned."""
    app, sessions = recording_app(tmp_path)

    async def test() -> None:
        async with app.run_test(size=(80, 24), message_hook=messages) as pilot:
            await pilot.click("Collapsible CollapsibleTitle")
            app.screen.query_one("#speculate", Select).value = "lookup"
            app.screen.query_one("#kv", Select).value = "f16"
            await pilot.press("ctrl+g")
            await pilot.pause()
            assert notes(app) == ["Speculate lookup needs a quantized KV cache, q8_0 or q4_0 "
                                  "(llama.cpp splits one token's attention over an f16 cache "
                                  "across threads, a batch's not, and the output would "
                                  "change)"]
            assert not sessions
            app.screen.query_one("#kv", Select).value = ""  # planned: quantized for speculation
            await pilot.press("ctrl+g")
            await messages.wait(pilot, ComposeScreen.Outlined)
            assert [(s.speculate, s.kv_type) for s in sessions] == [("lookup", None)]
            assert sessions[0].overrides.kv_quantized_why

    run(test)


@pytest.mark.parametrize(("verify_3", "chosen"), [(1.2, "lookup"), (3.0, "off")])
def test_speculate_auto_is_chosen_from_the_kept_measurement_before_the_model_loads(
        tmp_path, messages, monkeypatch, verify_3, chosen):
    """Speculate auto is chosen as the command line chooses it, from what was measured on the
    model here (a batch of three costing 1.2 or 3 tokens: lookup or off); the session gets the
    chosen mode, and a notification says why."""
    monkeypatch.setattr(lookup_gain, "measure_gain", pytest.fail)  # kept: not measured again
    kept = keep_lookup_gain(verify_3)
    app, sessions = recording_app(tmp_path)

    async def test() -> None:
        async with app.run_test(size=(80, 24), message_hook=messages) as pilot:
            await pilot.click("Collapsible CollapsibleTitle")
            app.screen.query_one("#speculate", Select).value = "auto"
            await pilot.press("ctrl+g")
            await messages.wait(pilot, ComposeScreen.Outlined)
            assert [s.speculate for s in sessions] == [chosen]
            assert notes(app)[0] == f"Speculate auto: {chosen} ({choose(kept).reason})"

    run(test)


def test_speculate_auto_holds_for_the_settings_it_was_chosen_for(tmp_path, monkeypatch):
    """A choice holds for the model, threads and KV cache it was made for (an f16 cache chosen
    after lookup is off, not refused), is made once for them, and a measurement first lets go
    of the loaded model, which would otherwise be in memory twice."""
    kept = keep_lookup_gain(1.2)
    state = TuiState(jobs_root=tmp_path / "jobs", speculate="auto")
    said: list[str] = []
    assert state.choose_speculation(said.append) == choose(kept) and not said
    assert state.speculation() == "lookup" and state.choose_speculation(said.append) is None
    state.kv_type = "f16"
    assert state.speculation() == "off"
    check_settings(state.settings())  # not refused: auto never looks up over f16
    assert state.choose_speculation(said.append).mode == "off"
    state.kv_type, state.threads = None, default_threads() + 1  # not measured: measured now
    state.session = FakeSession(state.settings(), FakeChat())
    monkeypatch.setattr(lookup_gain, "measure_gain", lambda *args: kept)
    assert state.choose_speculation(said.append) == choose(kept)
    assert said and state.session is None


# 6. focus and keys

def test_focus_and_keys(tmp_path, messages):
    chat = FakeChat()
    app = fake_app(tmp_path, chat, outline=outline())

    async def test() -> None:
        async with app.run_test(size=(80, 24), message_hook=messages) as pilot:
            assert isinstance(app.focused, TextArea) and app.focused.id == "prompt"
            await pilot.press("f6")  # inside the prompt: the Library, not a selected line
            assert app.current_mode == "library"
            await pilot.press("f3")
            assert app.screen.query_one("#prompt", TextArea).text == PROMPT
            await pilot.press("f4")
            footer_keys = [k for k in app.screen.query(FooterKey) if k.action != "command_palette"]
            assert [k.description for k in footer_keys[:2]] == ["Write", "Add"]
            app.screen.query_one("#section-title", Input).focus()
            await pilot.press("escape")  # Esc leaves the field
            assert isinstance(app.focused, DataTable)
            app.screen.query_one("#section-point", Input).focus()
            await pilot.press("ctrl+w")  # writes, from inside a field
            assert app.current_mode == "writing"
            await messages.wait(pilot, WritingScreen.Stopped)
            assert app.state.job is not None and app.state.job.state == "done"

    run(test)


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
def test_every_screen_fits(tmp_path, size):
    app = fake_app(tmp_path, FakeChat(), outline=outline(), model=CARD)
    Job.create(tmp_path / "jobs", JobSettings(PROMPT, 300, model="x"),
               name="20261128-101010-a-job-with-a-rather-long-name-for-its-id")

    async def test() -> None:
        async with app.run_test(size=size) as pilot:
            for key in ("f2", "f3", "f4", "f5", "f6"):
                await pilot.press(key)
                keys = list(app.screen.query_one(Footer).query(FooterKey))
                assert keys and all(k.region.right <= size[0] for k in keys), key
                if key == "f5":  # the document at a readable width
                    assert app.screen.query_one(Markdown).region.width <= 90
            await pilot.press("d")  # the delete confirmation, whole
            await pilot.pause()
            await pilot.wait_for_scheduled_animations()
            assert isinstance(app.screen, ConfirmScreen)
            question = " ".join(widget_text(app, ".question").split())
            assert question == ("Delete 20261128-101010-a-job-with-a-rather-long-name-for-its-id"
                                " and everything written in it?")
            assert "Yes (y)" in widget_text(app, "#yes") and "No (n)" in widget_text(app, "#no")
            await pilot.press("n", "f1")  # the help, whole: no line wrapped or cut
            await pilot.pause()
            await pilot.wait_for_scheduled_animations()
            help_text = app.screen.query_one("#help")
            assert help_text.region.bottom <= size[1] and help_text.max_scroll_y == 0
            assert max(Text.from_markup(line).cell_len for line in HELP.splitlines()) <= (
                help_text.content_region.width)

    run(test)


# 7. pause keeps the partial section; resume writes it again to the same text; the dashboard

def test_pause_keeps_the_partial_section_and_resume_writes_it_again(tmp_path, messages):
    chat = FakeChat(paced=True)
    app = fake_app(tmp_path, chat, outline=outline(300, 3))

    async def test() -> None:
        async with app.run_test(size=(80, 24), message_hook=messages) as pilot:
            await pilot.press("f4", "ctrl+w")
            chat.release(1)
            await messages.wait(pilot, WritingScreen.Update, section_words(messages, 1))
            chat.release(19)
            await messages.wait(pilot, WritingScreen.Update, section_words(messages, 20))
            shown = screen_text(app)
            assert "· writing · 20 of 300 words" in shown
            stats = str(app.screen.query_one("#writing-stats").render())
            assert "… tok/s" not in stats and "tok/s" in stats  # from the first tokens
            assert "context" in stats and "context 0 " not in stats
            await pilot.press("c")  # cancel asks first
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("n")
            await pilot.press("p")
            await messages.wait(pilot, WritingScreen.Stopped)
            job = app.state.job
            assert job is not None
            partial = job.partial_text(1)
            assert len(partial.split()) == 20 and job.state == "interrupted"
            document = app.screen.query_one(Markdown).source
            assert document.rstrip().endswith(partial.rstrip())
            assert "· paused · 20 of 300 words" in screen_text(app)
            await pilot.press("r")
            chat.release_all()
            await messages.wait(pilot, WritingScreen.Stopped, lambda m: m.finished)
            assert chat.model.continued == []  # written again from its start, to the same text
            assert job.section_text(1).startswith(partial)
            bars = [app.screen.query_one(b).percentage for b in ("#section-bar", "#document-bar")]
            assert bars == [1.0, 1.0]
            words = job.words()
            assert f"· done · {words:,} of 300 words" in screen_text(app)
            await pilot.press("f6")
            assert app.screen.query_one(DataTable).get_row_at(0)[2] == f"{words:,}"

    run(test)


# 8. the chosen model in view; not downloaded said as such; no CLI options in the app

def test_the_model_is_in_view_and_a_missing_one_says_how_to_get_it(tmp_path, messages):
    app = fake_app(tmp_path, FakeChat(), model=CARD, words=300,
                   machine=Machine(ram_total=GIB, ram_available=GIB // 20, vram_total=0,
                                   vram_free=0, gpu=None, unified=False, cores=4, threads=8))

    async def test() -> None:
        async with app.run_test(size=(100, 30), message_hook=messages) as pilot:
            assert CARD in screen_text(app).splitlines()[0]  # the status bar
            assert f"model {CARD} (not downloaded)" in screen_text(app)
            await pilot.press("f2")
            await messages.wait(pilot, ModelScreen.Planned)
            shown = " ".join(screen_text(app).split())
            assert "not downloaded" in shown and "get it with: lwlocal convert" in shown
            assert "VRAM" not in shown and "0.00 of 0.00" not in shown  # no GPU here
            assert "--" not in str(app.screen.query_one("#plan-reasons").render())
            await pilot.press("f3", "ctrl+g")
            await pilot.pause()
            assert any("no local GGUF file (get it with: lwlocal convert" in n
                       for n in notes(app))
            app.screen.query_one("#words", Input).value = "-5"
            await pilot.press("ctrl+g")
            await pilot.pause()
            assert "Words -5: must be a positive number of words" in notes(app)
            assert not any("--words" in n for n in notes(app))

    run(test)


# 4 (the app's part). a job that cannot be written here says why, in one line

def test_a_job_refused_by_the_library_is_a_message(tmp_path, messages, monkeypatch):
    def refuse(self: FakeSession, job: Job, *args: Any, **kwargs: Any) -> Any:
        raise LwlocalError(f"{job.id}: being written by process 4242")

    monkeypatch.setattr(FakeSession, "run", refuse)
    app = fake_app(tmp_path, FakeChat())
    job = Job.create(tmp_path / "jobs", JobSettings(PROMPT, 100, model="x"), name="tea")
    job.save_outline(outline(100, 1))

    async def test() -> None:
        async with app.run_test(size=(80, 24), message_hook=messages) as pilot:
            await pilot.press("f6", "r")
            stopped = await messages.wait(pilot, WritingScreen.Stopped)
            assert stopped.error == "tea: being written by process 4242"
            assert "tea: being written by process 4242" in notes(app)
            assert app.state.task is None and app.current_mode == "writing"

    run(test)


def test_the_library_lists_a_broken_job_and_says_why(tmp_path, messages):
    """A job whose section is not UTF-8: listed as broken (never hidden, never a crash of the
    screen), and opening it says why in one line."""
    app = fake_app(tmp_path, FakeChat())
    job = Job.create(tmp_path / "jobs", JobSettings(PROMPT, 100, model="x"), name="tea")
    job.save_outline(outline(100, 1))
    job.section_path(1).write_bytes(b"\xff")

    async def test() -> None:
        async with app.run_test(size=(80, 24), message_hook=messages) as pilot:
            await pilot.press("f6")
            table = app.screen.query_one("#jobs", DataTable)
            row = table.get_row_at(0)
            assert (str(row[3]), row[1]) == ("tea", "broken")
            await pilot.press("r")
            await pilot.pause()
            assert any(n.startswith(f"tea is broken: {job.section_path(1)}: not UTF-8")
                       for n in notes(app)), notes(app)
            assert app.current_mode == "library"

    run(test)


# 10. undo a delete; a new section's main point; export errors; switching screens

def test_outline_delete_undo_and_new_sections(tmp_path):
    app = fake_app(tmp_path, FakeChat(), outline=outline(300, 3))

    async def test() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("f4", "down", "x")
            assert [s.title for s in app.state.outline.sections] == ["Part 1", "Part 3"]
            await pilot.press("u")
            assert [s.title for s in app.state.outline.sections] == ["Part 1", "Part 2",
                                                                     "Part 3"]
            await pilot.press("a")
            new = app.state.outline.sections[2]
            assert new.title == "New section" and new.main_point == ""
            assert app.focused is app.screen.query_one("#section-title")
            await pilot.press("T", "e", "a")
            assert new.title == "Tea"

    run(test)


def test_an_export_error_stays_in_the_dialog(tmp_path):
    app = fake_app(tmp_path, FakeChat())
    job = Job.create(tmp_path / "jobs", JobSettings(PROMPT, 100, model="x"), name="tea")
    job.save_outline(outline(100, 1))
    job.save_section(1, "Tea is good.")

    async def test() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("f6", "e")
            target = tmp_path / "no-such-folder" / "tea.md"
            app.screen.query_one("#export-path", Input).value = str(target)
            await pilot.click("#export")
            assert isinstance(app.screen, ExportScreen)
            error = str(app.screen.query_one("#export-error").render())
            assert error == f"{target}: folder {target.parent} does not exist"
            path = app.screen.query_one("#export-path", Input)
            path.value = str(tmp_path / "tea.md")
            path.focus()
            await pilot.press("enter")
            assert not isinstance(app.screen, ExportScreen)
            assert (tmp_path / "tea.md").read_text().startswith("## Part 1")

    run(test)


def test_switching_screens_while_writing_keeps_the_text(tmp_path, messages):
    chat = FakeChat(paced=True)
    app = fake_app(tmp_path, chat, outline=outline(300, 3))

    async def test() -> None:
        async with app.run_test(size=(80, 24), message_hook=messages) as pilot:
            await pilot.press("f4", "ctrl+w")
            chat.release(10)
            await messages.wait(pilot, WritingScreen.Update, section_words(messages, 10))
            await pilot.press("f6")  # the text that comes meanwhile waits for the screen
            chat.release(30)
            await messages.wait(pilot, WritingScreen.Update, section_words(messages, 40))
            document = writing(app).query_one(Markdown)
            assert len(document.source.split()) < 40
            await pilot.press("f5")
            await pilot.pause()
            assert len(document.source.split()) >= 40
            await pilot.press("p")
            await messages.wait(pilot, WritingScreen.Stopped)

    run(test)


# the whole flow on the default model

@pytest.mark.model
def test_compose_outline_write_pause_resume_export(tmp_path, messages):
    app = LwlocalApp(TuiState(jobs_root=tmp_path / "jobs", threads=1))

    async def test() -> None:
        async with app.run_test(size=(80, 24), message_hook=messages) as pilot:
            app.screen.query_one("#prompt", TextArea).load_text(PROMPT)
            app.screen.query_one("#words", Input).value = "120"
            app.screen.query_one("#sections", Input).value = "2"
            await pilot.press("ctrl+g")
            await messages.wait(pilot, ComposeScreen.Outlined)
            assert app.current_mode == "outline"
            plan = app.state.outline
            assert plan is not None and len(plan.sections) == 2
            app.screen.query_one("#section-words", Input).value = "70"
            await pilot.pause()
            assert plan.sections[0].words == 70
            await pilot.press("ctrl+w")
            await messages.wait(pilot, WritingScreen.Update, lambda m: m.event.done >= 10)
            await pilot.press("p")
            await messages.wait(pilot, WritingScreen.Stopped)
            job = app.state.job
            assert job is not None
            index = len(job.finished()) + 1  # the section the pause stopped
            partial = job.partial_text(index)
            await pilot.press("f6", "r")  # resumed from the library
            await messages.wait(pilot, WritingScreen.Stopped, lambda m: m.finished)
            assert app.state.job is not None and app.state.job.dir == job.dir
            job = app.state.job
            # mid-section; or (a loaded machine) as one ended, or as the guard had cut the
            # section's start back (the section written again cuts it again)
            assert partial.strip() or index > 1 or job.repairs(index)
            # written again from its start: it begins as it did (tests/test_write_e2e.py checks
            # that a resumed document is the uninterrupted one, byte for byte)
            assert job.state == "done"
            words = partial.split()[:5]
            # unless the guard cut that start, as any run would (the pause came before the
            # faulty sentence ended, perhaps before its twentieth character)
            began = " ".join(words)
            cut = [r["text"] for r in job.repairs(index)
                   if " ".join(r["text"].split())[:20].startswith(began[:20])
                   or began.startswith(" ".join(r["text"].split())[:20])]
            written = job.section_text(index)
            assert written.split()[:len(words)] == words or cut, (partial, written[:200],
                                                                   job.repairs(index))
            assert job.outline().sections[0].words == 70
            out = tmp_path / "guide.html"
            await pilot.press("f6", "e")
            app.screen.query_one("#export-format").value = "html"
            await pilot.pause()
            app.screen.query_one("#export-path", Input).value = str(out)
            await pilot.click("#export")
            assert "<h2>" in out.read_text()

    run(test)


def test_the_review_shows_each_section_and_writes_one_again(tmp_path, messages):
    """v on the Writing screen: the job's review, a row a section (titles as text, brackets
    and all), the cursor on a section worth writing again; w writes it again, the rest kept."""
    chat = FakeChat()
    app = fake_app(tmp_path, chat)
    job = Job.create(tmp_path / "jobs", JobSettings(PROMPT, 200, model="x"), name="tea")
    job.save_outline(Outline(PROMPT, 200, [Section("[Steep] the leaves", "How long.", 100),
                                           Section("Water", "How hot.", 100)]))
    steeped = ("Green tea steeps for two minutes below boiling. Black tea takes four, in water "
               "just off the boil. Oolong sits between them and may be steeped again and again. "
               "A warm pot keeps the heat steady while the leaves open. White tea wants cooler "
               "water still and a longer wait. Rinse the leaves first if they are old or dusty. "
               "Pour the whole pot out once it is done, or it turns bitter. A timer is worth more "
               "than any rule of thumb here. Taste, then change one thing at a time. Soft water "
               "brings out the sweetness that hard water hides.")
    job.save_section(1, steeped)
    job.save_section(2, "Water at eighty degrees keeps it sweet.")  # far short of 100 words
    job.update(state="done")

    async def test() -> None:
        async with app.run_test(size=(120, 40), message_hook=messages) as pilot:
            await pilot.press("f6", "o")
            assert app.current_mode == "writing"
            await pilot.press("v")
            table = app.screen.query_one("#review-table", DataTable)
            assert table.row_count == 2
            assert str(table.get_row_at(0)[1]) == "[Steep] the leaves"
            columns = [str(c.label) for c in table.columns.values()]
            short = dict(zip(columns, map(str, table.get_row_at(1)), strict=True))
            assert (short["garbled"], short["leaks"], short[""]) == ("0", "0", "rewrite")
            assert table.cursor_row == 1  # section 2 is short: worth writing again
            await pilot.press("w")
            await messages.wait(pilot, WritingScreen.Stopped, lambda m: m.finished)
            assert job.section_text(1) == steeped
            assert len(job.section_text(2).split()) >= 80

    run(test)


def outlined_job_app(tmp_path: Path, chat: Any, section: Section) -> tuple[LwlocalApp, Job]:
    """The app over ``chat`` (any chat backend) with an outlined one-section job in its
    library."""
    app = LwlocalApp(TuiState(jobs_root=tmp_path / "jobs", prompt=PROMPT, machine=MACHINE,
                              new_session=lambda settings: FakeSession(settings, chat)))
    job = Job.create(tmp_path / "jobs", JobSettings(PROMPT, section.words, model="x"),
                     name="outlined")
    job.save_outline(Outline(PROMPT, section.words, [section]))
    job.update(state="outlined")
    return app, job


def test_text_the_writer_cuts_back_leaves_the_screen(tmp_path, messages):
    """A sentence about the writing streams in, the writer cuts it and writes on: the
    document on screen is the journal's, without it."""
    from tests.support.scripted_chat import ScriptedLocalChat

    soil = ("Soil is the living base of every garden bed. Worms and roots keep it open, and "
            "compost feeds it through the year. ")
    chat = ScriptedLocalChat([soil + "In this section I will cover the soil. More here.",
                              " Clay holds water for weeks and sand lets it go in hours."],
                             hold=threading.Event())
    app, job = outlined_job_app(tmp_path, chat, Section("Soil", "What soil needs.", 30))

    async def test() -> None:
        async with app.run_test(size=(120, 40), message_hook=messages) as pilot:
            await pilot.press("f6", "r")
            await messages.wait(pilot, WritingScreen.Update, lambda m: m.event.stage == "rewind")
            assert chat.hold is not None
            try:
                for _ in range(5):  # the document's stream drawn
                    await pilot.pause()
                document = writing(app).query_one(Markdown)
                assert "Worms and roots" in document.source  # what was kept
                assert "In this section" not in document.source  # shown, then taken back
            finally:
                chat.hold.set()
            await messages.wait(pilot, WritingScreen.Stopped, lambda m: m.finished)
            assert "Clay holds water" in document.source
            assert job.section_text(1) == soil + "Clay holds water for weeks and sand lets it " \
                "go in hours."

    run(test)


def test_a_job_done_short_of_its_plan_says_so(tmp_path, messages):
    from tests.support.scripted_chat import ScriptedChat

    chat = ScriptedChat(["Tea is good.", "Water matters."])  # a server's model, always short
    app, job = outlined_job_app(tmp_path, chat, Section("Leaves", "Which leaves.", 60))

    async def test() -> None:
        async with app.run_test(size=(120, 40), message_hook=messages) as pilot:
            await pilot.press("f6", "r")
            await messages.wait(pilot, WritingScreen.Stopped, lambda m: m.finished)
            assert any("section 1 came out short of its plan" in n for n in notes(app))

    run(test)
