"""Snapshots of every screen at 80x24 and 160x48 in fixed states (a fixed machine for the
memory plan, jobs with fixed names and dates). The SVGs under ``__snapshots__`` are what
docs/terminal-app.md shows; ``pytest --snapshot-update`` rewrites them after a deliberate
change."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from lwlocal.memory.hardware import Machine
from lwlocal.tui.app import LwlocalApp
from lwlocal.tui.state import TuiState
from lwlocal.write.journal import Job
from lwlocal.write.outline import Outline, Section

GIB = 2**30
MACHINE = Machine(ram_total=16 * GIB, ram_available=12 * GIB, vram_total=0, vram_free=0,
                  gpu=None, unified=False, cores=4, threads=8)
OUTLINE = Outline("Write a guide to brewing green tea at home.", 1200, [
    Section("Choosing the leaves", "Sencha, gyokuro and bancha, and how to buy them", 300),
    Section("Water and temperature", "Soft water at 70-80 °C, never boiling", 300),
    Section("Steeping", "Amounts, times and second infusions", 350),
    Section("Serving and storing", "Cups, pairing and keeping tea fresh", 250),
])
TEXTS = ["Green tea starts with the leaf. Sencha is the everyday tea of Japan.",
         "Water matters as much as the leaves. Let boiled water cool for a few minutes.",
         "Use two grams of leaves for every hundred millilitres and steep for a minute.",
         "Serve it in small cups. Keep the leaves in a tin, away from light and air."]
PARTIAL = "Use two grams of leaves for every hundred"


@pytest.fixture(autouse=True)
def utc(monkeypatch):  # the library shows dates in local time
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


@pytest.fixture(autouse=True)
def threads_per_core(monkeypatch):  # the plan shows its threads: one per core, however run
    monkeypatch.delenv("LWLOCAL_THREADS", raising=False)


def make_job(root: Path, name: str, created: float, state: str, sections: int,
             partial: str = "") -> Path:
    """A job with ``sections`` finished sections (and the ``partial`` start of the next)."""
    folder = root / name
    (folder / "sections").mkdir(parents=True)
    meta = {"prompt": OUTLINE.prompt, "words": OUTLINE.words, "model": "smollm2-135m",
            "mode": "agentwrite", "created": created, "state": state, "n_ctx": 4096}
    if state == "done":
        meta["result"] = {"words": 58, "seconds": 75.2, "decode_tokens_per_s": 31.4}
    (folder / "job.json").write_text(json.dumps(meta))
    (folder / "outline.json").write_text(OUTLINE.to_json())
    for i in range(sections):
        (folder / "sections" / f"{i + 1:03d}.md").write_text(TEXTS[i])
    if partial:
        (folder / "sections" / f"{sections + 1:03d}.partial.md").write_text(partial)
    return folder


@pytest.fixture
def state(tmp_path) -> TuiState:
    root = tmp_path / "jobs"
    make_job(root, "20261101-090000-green-tea", 1_793_523_600, "interrupted", 2, PARTIAL)
    make_job(root, "20261102-100000-green-tea", 1_793_613_600, "outlined", 0)
    make_job(root, "20261103-110000-green-tea", 1_793_703_600, "done", 4)
    return TuiState(prompt=OUTLINE.prompt, words=1200, outline=OUTLINE, jobs_root=root,
                    machine=MACHINE)


SIZES = pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])


async def settle(pilot) -> None:
    """Every worker done and its messages handled, animations finished, and the text cursors
    steady (a blinking one is drawn or not by the clock)."""
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    for field in pilot.app.screen.query("Input, TextArea"):
        field.cursor_blink = False
    await pilot.pause()


def after(*keys: str, job: str | None = None):
    """A ``run_before`` (which runs before snap_compare's own key presses): open ``job`` on the
    Writing screen, press ``keys``, then settle."""
    async def run_before(pilot) -> None:
        if job is not None:
            pilot.app.show_job(Job.open(job, pilot.app.state.jobs_root), start=False)
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)

    return run_before


@SIZES
def test_model_screen(snap_compare, state, size):
    assert snap_compare(LwlocalApp(state), terminal_size=size, run_before=after("f2"))


@SIZES
def test_compose_screen(snap_compare, state, size):
    assert snap_compare(LwlocalApp(state), terminal_size=size, run_before=after())


@SIZES
def test_outline_screen(snap_compare, state, size):
    assert snap_compare(LwlocalApp(state), terminal_size=size, run_before=after("f4"))


@SIZES
def test_writing_screen(snap_compare, state, size):
    """A job stopped part-way through its third section."""
    assert snap_compare(LwlocalApp(state), terminal_size=size,
                        run_before=after(job="20261101"))


@SIZES
def test_writing_screen_done(snap_compare, state, size):
    assert snap_compare(LwlocalApp(state), terminal_size=size,
                        run_before=after(job="20261103"))


@SIZES
def test_library_screen(snap_compare, state, size):
    assert snap_compare(LwlocalApp(state), terminal_size=size, run_before=after("f6"))


@SIZES
def test_delete_confirmation(snap_compare, state, size):
    assert snap_compare(LwlocalApp(state), terminal_size=size, run_before=after("f6", "d"))


@SIZES
def test_help_screen(snap_compare, state, size):
    assert snap_compare(LwlocalApp(state), terminal_size=size, run_before=after("f1"))
