"""The terminal app driven by Textual's pilot, writing with the fake chat backend: compose ->
outline -> edit a budget -> write -> library -> pause and resume a job mid-way -> export; and
every bad-input path ends in a notification."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.worker import WorkerState

from lwlocal.runtime.chat import Hooks
from lwlocal.tui.app import LwlocalApp
from lwlocal.tui.state import TuiState
from lwlocal.write.journal import Job, list_jobs
from lwlocal.write.settings import JobSettings
from tests.support.fake_chat import FakeModel

PROMPT = "Write a short guide to brewing green tea at home."
IDLE_PAUSES = 50


async def until(pilot, condition: Callable[[], bool]) -> None:
    """Let the app run until ``condition`` holds; fail once nothing is left running that
    could make it hold (no worker for IDLE_PAUSES pauses in a row), however slow the work."""
    idle = 0
    while not condition():
        busy = any(w.state in (WorkerState.PENDING, WorkerState.RUNNING)
                   for w in pilot.app.workers)
        idle = 0 if busy else idle + 1
        assert idle < IDLE_PAUSES, "nothing left running and the condition does not hold"
        await pilot.pause(0.1)


async def compose_and_plan(pilot, app: LwlocalApp, words: int, sections: int) -> None:
    await pilot.press("f3")
    app.screen.query_one("#prompt").load_text(PROMPT)
    app.screen.query_one("#words").value = str(words)
    app.screen.query_one("#sections").value = str(sections)
    await pilot.press("ctrl+g")
    await until(pilot, lambda: app.current_mode == "outline")
    await pilot.pause(0.5)  # the outline screen settles on its first section


@pytest.fixture
def app(tmp_path: Path, fake_model: FakeModel) -> LwlocalApp:
    return LwlocalApp(TuiState(jobs_root=tmp_path / "jobs"))


async def _test_compose_outline_write_library_export(app, tmp_path):
    async with app.run_test(size=(80, 24)) as pilot:
        await compose_and_plan(pilot, app, 240, 3)
        outline = app.state.outline
        assert len(outline.sections) == 3 and outline.words == 240

        app.screen.query_one("#section-words").value = "90"  # edit the first budget
        await pilot.pause()
        assert outline.sections[0].words == 90
        assert f"planned {outline.planned_words:,}" in str(
            app.screen.query_one("#outline-total").render())
        await pilot.press("a")  # add a section after the first, then delete it again
        assert outline.sections[1].title == "New section"
        await pilot.press("x")
        assert all(s.title != "New section" for s in outline.sections)

        await pilot.press("ctrl+w")
        await until(pilot, lambda: app.state.job is not None and app.state.job.state == "done")
        job = app.state.job
        assert (job.dir / "document.md").is_file()
        assert job.outline().sections[0].words == 90  # the edited outline was written
        await until(pilot, lambda: "done" in str(app.screen.query_one("#job-title").render()))
        assert app.screen.query_one("#document").source.strip()

        await pilot.press("f6")
        await pilot.pause()
        table = app.screen.query_one("#jobs")
        assert table.row_count == 1 and table.get_row_at(0)[1] == "done"
        out = tmp_path / "guide.html"
        await pilot.press("e")
        await pilot.pause()
        app.screen.query_one("#export-format").value = "html"
        await pilot.pause()
        app.screen.query_one("#export-path").value = str(out)
        await pilot.click("#export")
        await until(pilot, out.is_file)
        assert "<h2>" in out.read_text()


async def _test_pause_then_resume_from_the_library(app, fake_model):
    in_section_2 = threading.Event()

    def hold_section_2(request: int, index: int, hooks: Hooks) -> None:
        if request == 2 and index == 5:  # the outline, section 1, then 5 words of section 2
            in_section_2.set()
            assert hooks.cancel is not None
            hooks.cancel.wait()  # until paused (or the app closes)

    fake_model.on_piece = hold_section_2
    async with app.run_test(size=(80, 24)) as pilot:
        await compose_and_plan(pilot, app, 300, 3)
        await pilot.press("ctrl+w")
        await until(pilot, in_section_2.is_set)
        assert app.state.job is not None and app.state.job.finished() == [1]
        await pilot.press("p")
        job = app.state.job
        await until(pilot, lambda: job.state == "interrupted")
        fake_model.on_piece = None
        first = job.section_text(1)
        assert len(job.finished()) < len(job.outline().sections)

        await pilot.press("f6")
        await pilot.pause()
        assert app.screen.query_one("#jobs").get_row_at(0)[1] == "interrupted"
        await pilot.press("r")
        await until(pilot, lambda: app.state.job.state == "done")  # reopened from the library
        assert app.state.job.dir == job.dir
        assert job.section_text(1) == first  # the finished section was kept, not rewritten
        assert len(job.finished()) == len(job.outline().sections)


async def _test_bad_input_is_a_notification(app, tmp_path):
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f3", "ctrl+g")  # no prompt
        await pilot.pause()
        assert any("prompt" in n.message for n in app._notifications)
        app.screen.query_one("#prompt").load_text(PROMPT)
        app.screen.query_one("#words").value = "-5"
        await pilot.press("ctrl+g")
        await pilot.pause()
        assert any("--words -5" in n.message for n in app._notifications)
        assert app.current_mode == "compose"

        Job.create(app.state.jobs_root, JobSettings(PROMPT, 100, model="x"))
        await pilot.press("f6")
        await pilot.pause()
        await pilot.press("e")  # nothing written yet: a notification, no file
        await pilot.pause()
        await pilot.click("#export")
        await pilot.pause()
        assert any("nothing written yet" in n.message for n in app._notifications)
        await pilot.press("d", "n")  # delete, declined
        await pilot.pause()
        assert len(list(list_jobs(app.state.jobs_root))) == 1
        await pilot.press("d", "y")  # delete, confirmed
        await pilot.pause()
        assert list(list_jobs(app.state.jobs_root)) == []
        assert app.screen.query_one("#jobs").row_count == 0


def test_compose_outline_write_library_export(app, tmp_path):
    asyncio.run(_test_compose_outline_write_library_export(app, tmp_path))


def test_pause_then_resume_from_the_library(app, fake_model):
    asyncio.run(_test_pause_then_resume_from_the_library(app, fake_model))


def test_bad_input_is_a_notification(app, tmp_path):
    asyncio.run(_test_bad_input_is_a_notification(app, tmp_path))
