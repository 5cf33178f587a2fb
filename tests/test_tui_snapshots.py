"""Snapshots of every screen at 80x24 in fixed states (a fixed machine for the memory plan,
jobs with fixed names and dates). The SVGs under ``__snapshots__`` are what
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
         "Use two grams of leaves for every hundred millilitres and steep for a minute."]


@pytest.fixture(autouse=True)
def utc(monkeypatch):  # the library shows dates in local time
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


def make_job(root: Path, name: str, created: float, state: str, sections: int) -> Path:
    folder = root / name
    (folder / "sections").mkdir(parents=True)
    meta = {"prompt": OUTLINE.prompt, "words": OUTLINE.words, "model": "smollm2-135m",
            "mode": "agentwrite", "created": created, "state": state, "n_ctx": 4096}
    (folder / "job.json").write_text(json.dumps(meta))
    (folder / "outline.json").write_text(OUTLINE.to_json())
    for i in range(sections):
        (folder / "sections" / f"{i + 1:03d}.md").write_text(TEXTS[i])
    return folder


@pytest.fixture
def state(tmp_path) -> TuiState:
    root = tmp_path / "jobs"
    make_job(root, "20261101-090000-green-tea", 1_793_523_600, "interrupted", 2)
    make_job(root, "20261102-100000-green-tea", 1_793_613_600, "planned", 0)
    make_job(root, "20261103-110000-green-tea", 1_793_703_600, "done", 3)
    return TuiState(prompt=OUTLINE.prompt, words=1200, outline=OUTLINE, jobs_root=root,
                    machine=MACHINE)


async def settle(pilot) -> None:
    await pilot.pause(0.5)
    await pilot.wait_for_scheduled_animations()


def test_model_screen(snap_compare, state):
    async def planned(pilot):
        await pilot.press("f2")
        for _ in range(100):
            if "fits" in str(pilot.app.screen.query_one("#plan-title").render()):
                break
            await pilot.pause(0.1)
        await settle(pilot)

    assert snap_compare(LwlocalApp(state), run_before=planned)


def test_compose_screen(snap_compare, state):
    assert snap_compare(LwlocalApp(state), run_before=settle)


def test_outline_screen(snap_compare, state):
    assert snap_compare(LwlocalApp(state), press=["f4"], run_before=settle)


def test_writing_screen(snap_compare, state):
    async def open_job(pilot):
        root = pilot.app.state.jobs_root
        pilot.app.show_job(Job.open("20261101", root), start=False)
        await settle(pilot)

    assert snap_compare(LwlocalApp(state), run_before=open_job)


def test_library_screen(snap_compare, state):
    assert snap_compare(LwlocalApp(state), press=["f6"], run_before=settle)


def test_help_screen(snap_compare, state):
    assert snap_compare(LwlocalApp(state), press=["f1"], run_before=settle)

