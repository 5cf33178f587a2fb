"""`lwlocal jobs` and `lwlocal models` print ids and names whole, piped or on a narrow terminal,
and as JSON lines; Ctrl-C while `lwlocal resume` loads the model stops it."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from rich.console import Console
from rich.text import Text

from lwlocal.cli.render import print_table
from lwlocal.write.journal import Job
from lwlocal.write.outline import Outline, Section
from lwlocal.write.settings import JobSettings
from tests.support.bounds import HANG
from tests.support.cli import interruptible, run_cli

LONG_ID = "20261128-101010-a-guide-to-brewing-green-tea-at-home-for-beginners"


def make_job(home, name=LONG_ID) -> Job:
    job = Job.create(home / "jobs", JobSettings("Write about tea.", 200, model="smollm2-135m"),
                     name=name)
    job.save_outline(Outline("Write about tea.", 200, [Section("Leaves", "Kinds", 100),
                                                       Section("Water", "Heat", 100)]))
    job.update(state="outlined")
    return job


def test_jobs_piped_prints_whole_ids_and_json(lw_home):
    make_job(lw_home)
    piped = run_cli("jobs", env_home=lw_home, check=True).stdout.splitlines()
    assert piped[0].split("\t")[:3] == ["job", "state", "mode"]
    assert piped[1].split("\t")[0] == LONG_ID
    rows = [json.loads(line) for line in
            run_cli("jobs", "--json", env_home=lw_home, check=True).stdout.splitlines()]
    assert rows[0]["job"] == LONG_ID and rows[0]["words"] == "0/200"


def test_models_piped_and_json(lw_home):
    piped = run_cli("models", env_home=lw_home, check=True).stdout.splitlines()
    names = [line.split("\t")[0] for line in piped[1:]]
    assert "longwriter-llama3.1-8b" in names and "smollm2-135m" in names
    rows = {row["name"]: row for row in map(json.loads, run_cli(
        "models", "--json", env_home=lw_home, check=True).stdout.splitlines())}
    assert rows["smollm2-135m"]["path"] and rows["smollm2-135m"]["quant"] == "Q4_1"
    missing = rows["longwriter-llama3.1-8b"]
    assert missing["path"] is None and missing["get"].startswith(
        "lwlocal convert THUDM/LongWriter-llama3.1-8b -o ")


@pytest.mark.parametrize("width", [40, 80, 200])
def test_a_table_on_a_terminal_keeps_its_first_column_whole(width):
    console = Console(file=io.StringIO(), width=width, force_terminal=True, highlight=False)
    print_table(("job", "state", "words"), [(LONG_ID, "interrupted", "1,200/2,000")],
                console=console)
    text = Text.from_ansi(console.file.getvalue()).plain
    assert LONG_ID in text and "interrupted" in text and "1,200/2,000" in text


@pytest.mark.model
def test_ctrl_c_while_resume_loads_the_model_stops_it(lw_home):
    job = make_job(lw_home, "tea")
    log = lw_home / "llama.log"
    proc = subprocess.Popen([sys.executable, "-m", "lwlocal", "resume", job.id],
                            env={**os.environ, "LWLOCAL_HOME": str(lw_home)}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=interruptible)
    while "llama_model_load" not in (log.read_text() if log.is_file() else ""):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)  # polling the log file: the first line llama.cpp writes while loading
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=HANG)
    assert proc.returncode == 130, stderr
    assert f"interrupted: job {job.id} is kept" in stderr
    assert "Exception ignored" not in stderr and "Traceback" not in stderr
    assert Job.open(job.id, lw_home / "jobs").finished() == []
