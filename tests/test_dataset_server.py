"""`lwlocal dataset build` against llama.cpp's own ``llama-server`` on the default model (short
targets, so it is quick): two jobs at once, each on its own slot, every instruction decided
once; and a build killed with ``kill -9`` mid-way, gone on with by the same command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lwlocal.dataset.ledger import DATA, REJECTED
from tests.support.bounds import HANG
from tests.support.cli import invoke
from tests.support.llama_server import CHATML, LlamaServer, running
from tests.support.prompts import prompt_file

pytestmark = pytest.mark.model

NOTES = ("A note on tea.", "A note on coffee.", "A note on cocoa.", "A note on bread.")
# what the default model writes at these lengths passes the length filter
SMALL = ["--min-words", "20", "--max-words", "2000"]


@pytest.fixture(scope="module")
def llama_server(default_model: Path, tmp_path_factory) -> Iterator[LlamaServer]:
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with running(default_model, log, "--ctx-size", "4096", "--parallel", "2", *CHATML,
                 "--flash-attn", "on") as server:
        yield server


def decided(out: Path) -> list[str]:
    """The instructions a dataset folder decided, kept ones and rejected ones, in file order."""
    kept = [json.loads(line)["messages"][0]["content"]
            for line in (out / DATA).read_text().splitlines()] if (out / DATA).exists() else []
    rejected = [json.loads(line)["instruction"]
                for line in (out / REJECTED).read_text().splitlines()
                ] if (out / REJECTED).exists() else []
    return kept + rejected


def build_args(prompts: Path, out: Path, server: LlamaServer, *extra: str) -> list[str]:
    return ["dataset", "build", str(prompts), "-o", str(out), "--backend", "openai",
            "--base-url", server.url, *SMALL, *extra]


def test_a_build_on_llama_server_two_at_a_time(llama_server, tmp_path):
    prompts, out = prompt_file(tmp_path, 80, NOTES[:3]), tmp_path / "set"
    done = json.loads(invoke(*build_args(prompts, out, llama_server), "--concurrency", "2",
                             "--json", check=True).stdout)
    assert done["failed"] == [] and done["report"]["errors"] == 0
    assert done["report"]["concurrency"] == 2
    assert sorted(decided(out)) == sorted(NOTES[:3])
    assert done["kept"] == done["total_kept"] == len((out / DATA).read_text().splitlines())
    for line in (out / DATA).read_text().splitlines():
        user, assistant = json.loads(line)["messages"]
        assert user["role"] == "user" and assistant["role"] == "assistant"
        assert len(assistant["content"].split()) >= 20
    served = llama_server.log.read_text()
    assert served.count("selected slot by id") >= 3 * 2  # each job's turns on its own slot


def test_a_build_killed_mid_way_goes_on_without_duplicates(llama_server, tmp_path, lw_home):
    prompts, out = prompt_file(tmp_path, 60, NOTES), tmp_path / "set"
    child = subprocess.Popen([sys.executable, "-m", "lwlocal",
                              *build_args(prompts, out, llama_server)],
                             env={**os.environ, "LWLOCAL_HOME": str(lw_home)},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + HANG
    try:  # until the first instruction is decided
        while not decided(out) and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        first = decided(out)
        assert first and child.poll() is None, "the build ended before it could be killed"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert len(decided(out)) < len(NOTES)
    went_on = json.loads(invoke(*build_args(prompts, out, llama_server), "--json",
                                check=True).stdout)
    errors = [job["error"] for job in went_on["report"]["results"] if job["error"]]
    assert went_on["failed"] == [], errors
    after = decided(out)
    assert sorted(after) == sorted(NOTES)  # each once
    assert all(instruction in after for instruction in first)
