"""End-to-end on the default model: plan-only, an AgentWrite job, KV reuse, a kill -9 loop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lwlocal.write.journal import Job
from tests.support.cli import interruptible, run_cli

pytestmark = pytest.mark.model  # every test here runs the default model

PROMPT = "Write a travel guide to Lisbon for a first-time visitor."


def plan(lw_home, *extra: str) -> dict:
    proc = run_cli("write", PROMPT, "--words", "600", "--plan-only", "--json", *extra,
                   env_home=lw_home, check=True)
    return json.loads(proc.stdout)


def test_plan_only_prints_a_parseable_outline(lw_home):
    outline = plan(lw_home)
    sections = outline["sections"]
    assert 1 <= len(sections) <= 4
    assert sum(s["words"] for s in sections) == 600
    assert all(s["title"] and s["main_point"] for s in sections)
    assert not (lw_home / "jobs").exists()  # planning alone starts no job


def test_agentwrite_job_reuses_the_kv_cache(lw_home, tmp_path):
    out = tmp_path / "doc.md"
    proc = run_cli("write", PROMPT, "--words", "480", "--sections", "4", "--ctx", "4096",
                   "-o", str(out), "--json", env_home=lw_home, check=True)
    result = json.loads(proc.stdout)
    for key in ("job", "words", "sections", "prompt_tokens_evaluated", "context_tokens",
                "generated_tokens", "decode_tokens_per_s"):
        assert key in result
    assert len(result["sections"]) == 4
    # the memory plan chose what --ctx left open
    assert result["settings"]["n_ctx"] == 4096 and result["settings"]["flash_attn"] is True
    assert result["generated_tokens"] > 0 and result["decode_tokens_per_s"] > 0
    # sections are held near their budgets
    for s in result["sections"]:
        assert s["written"] <= s["planned"] * 1.3 + 1
    assert result["words"] >= 0.6 * 480
    # one growing conversation: prompt tokens evaluated stay below 1.15x the final context
    assert result["prompt_tokens_evaluated"] <= 1.15 * result["context_tokens"]
    document = out.read_text()
    assert document.count("\n## ") + document.startswith("## ") == 4
    job = Job.open(result["job"], lw_home / "jobs")
    assert job.state == "done" and job.finished() == [1, 2, 3, 4]
    listed = run_cli("jobs", "--json", env_home=lw_home, check=True).stdout.splitlines()
    assert json.loads(listed[0])["state"] == "done"


def test_edited_outline_is_written_as_given(lw_home, tmp_path):
    outline = plan(lw_home, "--sections", "2")
    outline["sections"][0]["words"] = 50
    outline["sections"][1]["words"] = 100
    outline["words"] = 150
    path = tmp_path / "outline.json"
    path.write_text(json.dumps(outline))
    proc = run_cli("write", "--outline", str(path), "--json", env_home=lw_home, check=True)
    result = json.loads(proc.stdout)
    assert [s["planned"] for s in result["sections"]] == [50, 100]


def _kill_when(cmd: list[str], env: dict[str, str], ready) -> None:
    """Run ``cmd`` and ``kill -9`` it once ``ready()`` is true (an event on disk, not a time)."""
    writer = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while writer.poll() is None and not ready():
            time.sleep(0.05)
        assert writer.poll() is None, "the writer finished before it could be killed"
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.wait()


def test_kill_9_loop_loses_no_finished_section(lw_home):
    """The fault trial's loop: kill -9 while planning, in the middle of a section and right
    after one; every resume keeps what was finished, and the job ends whole."""
    env = {**os.environ, "LWLOCAL_HOME": str(lw_home)}
    jobs = lw_home / "jobs"
    write = [sys.executable, "-m", "lwlocal", "write", PROMPT, "--words", "800", "--sections",
             "5", "--ctx", "4096", "--json"]
    _kill_when(write, env, lambda: any(jobs.glob("*/job.json")))  # planning
    (job_dir,) = jobs.iterdir()
    resume = [sys.executable, "-m", "lwlocal", "resume", job_dir.name, "--json"]
    kept: dict[int, bytes] = {}
    def partial() -> bool:
        return any(job_dir.glob("sections/*.partial.md"))

    def one_more_section() -> bool:
        return len(list(job_dir.glob("sections/00[0-9].md"))) > len(kept)

    for ready in (partial, one_more_section):  # in a section, right after one
        _kill_when(resume, env, ready)
        job = Job.open(str(job_dir), jobs)
        assert job.state == "interrupted"
        for i, data in kept.items():
            assert job.section_path(i).read_bytes() == data
        kept = {i: job.section_path(i).read_bytes() for i in job.finished()}
    assert 1 <= len(kept) < 5

    proc = run_cli("resume", job_dir.name, "--json", env_home=lw_home, check=True)
    result = json.loads(proc.stdout)
    job = Job.open(job_dir.name, jobs)
    assert job.state == "done" and job.finished() == [1, 2, 3, 4, 5]
    for i, data in kept.items():
        assert job.section_path(i).read_bytes() == data
    assert [s["stop"] for s in result["sections"][: len(kept)]] == ["journal"] * len(kept)
    assert not list(job_dir.glob("sections/*.partial.md"))
    document = (job_dir / "document.md").read_text()
    for i in kept:
        assert job.section_text(i).strip() in document


def test_ctrl_c_keeps_the_job_and_resume_finishes_it(lw_home):
    env = {**os.environ, "LWLOCAL_HOME": str(lw_home)}
    cmd = [sys.executable, "-m", "lwlocal", "write", PROMPT, "--words", "500", "--sections", "4",
           "--ctx", "4096"]
    writer = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, preexec_fn=interruptible)
    jobs = lw_home / "jobs"
    while writer.poll() is None:
        if list(jobs.glob("*/sections/001.md")):
            break
        time.sleep(0.05)
    writer.send_signal(signal.SIGINT)
    _, stderr = writer.communicate()
    assert writer.returncode == 130, stderr
    assert "interrupted" in stderr and "lwlocal resume" in stderr
    (job_dir,) = jobs.iterdir()
    job = Job.open(str(job_dir), jobs)
    assert job.state == "interrupted" and 1 <= len(job.finished()) < 4
    run_cli("resume", job.id, env_home=lw_home, check=True)
    assert Job.open(job.id, jobs).state == "done"


def test_context_overflow_drops_old_sections_from_the_conversation_only(lw_home, tmp_path):
    sections = [{"title": f"Part {i}", "main_point": f"Lisbon sight number {i}", "words": 90}
                for i in range(1, 9)]
    path = tmp_path / "outline.json"
    path.write_text(json.dumps({"prompt": PROMPT, "words": 720, "sections": sections}))
    proc = run_cli("write", "--outline", str(path), "--ctx", "1536", "--kv-type", "q8_0",
                   "--json", env_home=lw_home, check=True)
    result = json.loads(proc.stdout)
    assert len(result["sections"]) == 8
    assert result["settings"]["kv_type"] == "q8_0"
    # without dropping, the final context would hold every generated token and the head
    assert result["context_tokens"] < result["generated_tokens"]
    document = Path(result["document"]).read_text()
    assert all(f"## Part {i}" in document for i in range(1, 9))


def test_direct_mode_runs_in_the_context_the_planner_chose(lw_home):
    """The planner sizes a direct job's context from measured tokens per word; the writer must
    not ask for more room than that (it once refused every direct job over ~1,000 words)."""
    proc = run_cli("write", PROMPT, "--words", "1200", "--mode", "direct", "--json",
                   env_home=lw_home, check=True)
    result = json.loads(proc.stdout)
    assert result["settings"]["n_ctx"] < 1200 * 2  # the plan's context, not a generous one
    assert result["words"] >= 0.8 * 1200 and len(result["sections"]) == 1


def test_the_length_comes_from_the_instruction_or_the_mode_default(lw_home):
    asked = run_cli("write", "Write a 150-word note about green tea.", "--mode", "direct",
                    "--json", env_home=lw_home, check=True)
    assert "150 words, read from the instruction ('150-word')" in asked.stderr
    result = json.loads(asked.stdout)
    assert result["planned_words"] == 150 and result["words"] >= 0.8 * 150
    assert result["settings"]["words_source"] == "instruction"
    assert Job.open(result["job"], lw_home / "jobs").meta.settings.words_source == "instruction"
    default = run_cli("write", PROMPT, "--plan-only", "--json", env_home=lw_home, check=True)
    assert "no length in the instruction: 2,000 words, the agentwrite default (--words sets " \
        "it)" in default.stderr
    assert json.loads(default.stdout)["words"] == 2000
