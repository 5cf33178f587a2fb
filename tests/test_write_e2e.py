"""End-to-end on the default model, as a user runs lwlocal (a child process): an AgentWrite job
reusing the KV cache, the fault trial's stop-and-resume loop (which must end in the
uninterrupted document), a direct job in the planner's context. test_write.py checks the same
logic, and more, in this process on the fake chat backend."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lwlocal.write.journal import Job
from tests.support.cli import invoke, run_cli
from tests.support.job_result import check_four_section_result

pytestmark = pytest.mark.model  # every test here runs the default model

PROMPT = "Write a travel guide to Lisbon for a first-time visitor."


def test_agentwrite_job_reuses_the_kv_cache(lw_home, tmp_path, default_model):
    out = tmp_path / "doc.md"
    proc = run_cli("write", PROMPT, "--words", "200", "--sections", "4", "--ctx", "4096",
                   "-o", str(out), "--json", env_home=lw_home, check=True)
    result = json.loads(proc.stdout)
    check_four_section_result(result)
    # sections are held near their budgets
    for s in result["sections"]:
        assert s["written"] <= s["planned"] * 1.3 + 1
    assert result["words"] >= 0.6 * 200
    # one growing conversation: prompt tokens evaluated stay below 1.15x the final context
    assert result["prompt_tokens_evaluated"] <= 1.15 * result["context_tokens"]
    document = out.read_text()
    assert document.count("\n## ") + document.startswith("## ") == 4
    job = Job.open(result["job"], lw_home / "jobs")
    assert job.state == "done" and job.finished() == [1, 2, 3, 4]
    # each section kept in the tokens the model wrote it in, handed back so in the next request
    model_key = f"{default_model.name} {default_model.stat().st_size}"
    assert all(job.section_tokens(i, model_key) is not None for i in range(1, 5))
    listed = run_cli("jobs", "--json", env_home=lw_home, check=True).stdout.splitlines()
    assert json.loads(listed[0])["state"] == "done"


# two sections: the second asked for after the first is handed back in its tokens
SPECULATED = [PROMPT, "--words", "150", "--sections", "2", "--ctx", "2048"]


@pytest.fixture(scope="module")
def plain_document(tmp_path_factory) -> bytes:
    """The document a plain run (no speculation, the plan's defaults) writes."""
    home = tmp_path_factory.mktemp("plain")
    result = json.loads(run_cli("write", *SPECULATED, "--json", env_home=home,
                                check=True).stdout)
    return Path(result["document"]).read_bytes()


@pytest.mark.parametrize("mode", ["lookup", "draft"])
def test_write_with_speculation_writes_the_plain_document(lw_home, mode, request,
                                                          plain_document):
    """--speculate lookup or draft MODEL on the real model, nothing else given: the document
    a plain run with the defaults writes, byte for byte (the plan's KV cache on the CPU is the
    one speculation needs); kept in the job's settings, with the guesses made and kept in
    --json (test_speculate.py checks the tokens at the engine)."""
    speculate = [mode] if mode == "lookup" else [mode, str(request.getfixturevalue("draft_gguf"))]
    proc = run_cli("write", *SPECULATED, "--speculate", *speculate, "--json", env_home=lw_home,
                   check=True)
    result = json.loads(proc.stdout)
    assert Path(result["document"]).read_bytes() == plain_document
    assert result["settings"]["speculate"] == mode
    assert result["settings"]["draft_model"] == (speculate[1:] or [None])[0]
    assert result["settings"]["kv_type"] == "q8_0"
    drafted, accepted = result["drafted"], result["accepted"]
    assert drafted > 0 and 0 <= accepted <= drafted
    assert result["acceptance_rate"] == round(accepted / drafted, 3)


def _kill_when(cmd: list[str], env: dict[str, str], ready, signum: int) -> None:
    """Run ``cmd`` and send it ``signum`` once ``ready()`` is true (an event on disk, not a
    time)."""
    writer = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while writer.poll() is None and not ready():
            time.sleep(0.05)
        assert writer.poll() is None, "the writer finished before it could be stopped"
        os.kill(writer.pid, signum)
    finally:
        writer.wait()


@pytest.mark.parametrize("sampling,signum", [([], signal.SIGKILL),
                                             (["--temperature", "0"], signal.SIGTERM)],
                         ids=["seeded-kill-9", "greedy-sigterm"])
def test_a_job_stopped_anywhere_and_resumed_writes_the_uninterrupted_document(
        lw_home, tmp_path, sampling, signum):
    """The fault trial's loop: stopped while planning, in the middle of a section and right
    after one; every resume keeps what was finished, and the document is, byte for byte, the
    one the same job writes uninterrupted (the default sampling, seeded, and greedy): with the
    plan's batch-invariant KV cache, a resumed prefill is one token at a time, and a section
    a stop cut short is written again from its start (docs/reproducible.md)."""
    env = {**os.environ, "LWLOCAL_HOME": str(lw_home)}
    jobs = lw_home / "jobs"
    job_args = [PROMPT, "--words", "120", "--sections", "2", "--ctx", "4096", *sampling]
    whole = json.loads(run_cli("write", *job_args, "--json", env_home=lw_home,
                               check=True).stdout)
    expected = Path(whole["document"]).read_bytes()
    assert whole["settings"]["kv_type"] == "q8_0"  # the plan's default on the CPU
    before = set(jobs.iterdir())
    write = [sys.executable, "-m", "lwlocal", "write", *job_args, "--json"]
    _kill_when(write, env, lambda: bool(set(jobs.glob("*/job.json")) - {
        d / "job.json" for d in before}), signum)  # planning
    (job_dir,) = set(jobs.iterdir()) - before
    resume = [sys.executable, "-m", "lwlocal", "resume", job_dir.name, "--json"]
    kept: dict[int, bytes] = {}

    def partial() -> bool:
        for path in job_dir.glob("sections/*.partial.md"):
            with contextlib.suppress(FileNotFoundError):  # the section may end meanwhile
                if path.stat().st_size:
                    return True
        return False

    def one_more_section() -> bool:
        return len(list(job_dir.glob("sections/00[0-9].md"))) > len(kept)

    for ready in (partial, one_more_section):  # in a section, right after one
        _kill_when(resume, env, ready, signum)
        job = Job.open(str(job_dir), jobs)
        assert job.state == "interrupted"
        for i, data in kept.items():
            assert job.section_path(i).read_bytes() == data
        kept = {i: job.section_path(i).read_bytes() for i in job.finished()}
    assert kept.keys() == {1}

    proc = run_cli("resume", job_dir.name, "--json", env_home=lw_home, check=True)
    result = json.loads(proc.stdout)
    job = Job.open(job_dir.name, jobs)
    assert job.state == "done" and job.finished() == [1, 2]
    for i, data in kept.items():
        assert job.section_path(i).read_bytes() == data
    assert [s["stop"] for s in result["sections"][: len(kept)]] == ["journal"] * len(kept)
    assert not list(job_dir.glob("sections/*.partial.md"))
    assert (job_dir / "document.md").read_bytes() == expected


def test_direct_mode_runs_in_the_context_the_planner_chose(lw_home):
    """The planner sizes a direct job's context from measured tokens per word; the model's
    whole answer must fit it (test_write.py checks the writer at 1,200 words, where it once
    asked for more room than the plan gave)."""
    proc = run_cli("write", PROMPT, "--words", "600", "--mode", "direct", "--json",
                   env_home=lw_home, check=True)
    result = json.loads(proc.stdout)
    planned = json.loads(invoke("plan", "--words", "600", "--mode", "direct", "--json",
                                check=True).stdout)
    assert result["settings"]["n_ctx"] == planned["n_ctx"] < 600 * 3  # not a generous one
    assert result["words"] >= 0.8 * 600 and len(result["sections"]) == 1


WINDOW_TITLES = ["Wild yeast", "Flour", "Water", "Salt", "Mixing", "Kneading", "Folding",
                 "Proofing", "Shaping", "Scoring", "Steam", "Baking", "Cooling", "Storing"]


def test_a_job_that_moved_its_window_resumes_to_the_uninterrupted_document(lw_home, tmp_path):
    """Fourteen short sections in a context that holds about ten: the writer leaves the oldest
    out of the KV cache and moves the rest back (nothing evaluated again). Stopped by kill -9
    in the last section, the resumed job replays the move on its way and writes, byte for
    byte, the uninterrupted document; without the replay it writes another last section."""
    outline = tmp_path / "outline.json"
    outline.write_text(json.dumps({"prompt": "Write a guide to sourdough bread.", "words": 700,
                                   "sections": [{"title": t, "main_point": f"{t} for a home "
                                                 "baker", "words": 50} for t in WINDOW_TITLES]}))
    job_args = ["--outline", str(outline), "--ctx", "1792"]
    whole = json.loads(run_cli("write", *job_args, "--json", env_home=lw_home,
                               check=True).stdout)
    assert whole["window_moves"] >= 1
    assert whole["sections"][-1]["generated_tokens"] > 0
    jobs = lw_home / "jobs"
    before = set(jobs.iterdir())

    def last_section_begun() -> bool:
        for job_dir in set(jobs.iterdir()) - before:
            with contextlib.suppress(FileNotFoundError):
                if (job_dir / "sections" / "014.partial.md").stat().st_size:
                    return True
        return False

    env = {**os.environ, "LWLOCAL_HOME": str(lw_home)}
    _kill_when([sys.executable, "-m", "lwlocal", "write", *job_args, "--json"], env,
               last_section_begun, signal.SIGKILL)
    (job_dir,) = set(jobs.iterdir()) - before
    resumed = json.loads(run_cli("resume", job_dir.name, "--json", env_home=lw_home,
                                 check=True).stdout)
    assert resumed["window_moves"] == whole["window_moves"]
    assert Path(resumed["document"]).read_bytes() == Path(whole["document"]).read_bytes()
