"""Writing through a loopback ``lwlocal serve`` on the default model: the same output as the local
engine, prefix reuse in the stats, a server killed mid-job, jobs moved between the server and
a local backend (the fake one: what is checked is the journal), batch."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import pytest

from lwlocal.openai.client import OpenAIChat
from lwlocal.openai.endpoint import Server
from lwlocal.runtime.engine import Sampling
from lwlocal.util.progress import Progress
from lwlocal.write.jobs import Session
from lwlocal.write.journal import Job
from lwlocal.write.outline import Outline, Section
from lwlocal.write.settings import JobSettings
from tests.support.bounds import HANG
from tests.support.cli import invoke
from tests.support.continuation import check_replies_gone_on_with
from tests.support.prompts import prompt_file
from tests.support.server import CTX, free_port, start_server, stop

PROMPT = "Write a short guide to brewing green tea."
PARITY_PROMPT = "Write a short note on why rivers flood in spring."
def settings(**extra) -> JobSettings:
    return JobSettings(**{"prompt": PROMPT, "words": 60, "n_ctx": int(CTX), **extra})


def test_a_job_through_the_server_matches_the_local_engine(served):
    """On an instruction whose greedy text the writer repairs nothing in (a repair goes
    differently on each: a local model is kept from the token a faulty start began with, a
    server's is asked again), at a length past where the model would end its turn: the
    server's reply is held to the floor as the local one is (asked with end-of-turn banned,
    then gone on with)."""
    greedy = {"mode": "direct", "sampling": Sampling(temperature=0.0, seed=5),
              "prompt": PARITY_PROMPT, "words": 40}
    local = Session(settings(**greedy))
    local_result = local.run(local.new_job())
    assert not local_result.sections[0].repairs
    remote = Session(settings(**greedy, backend="openai", base_url=served))
    remote_result = remote.run(remote.new_job())
    local_text = Path(local_result.document_path).read_text()
    assert len(local_text.split()) >= 32
    assert Path(remote_result.document_path).read_text() == local_text
    assert remote_result.stats["generated_tokens"] == local_result.stats["generated_tokens"]


def test_the_server_reuses_the_conversation_prefix(served):
    session = Session(JobSettings(prompt=PROMPT, words=120, sections=3, backend="openai",
                                  base_url=served))
    result = session.run(session.new_job()).as_dict()
    stats = session.chat.stats
    assert stats.requests >= 4  # the outline and three sections, and what the writer retried
    # each turn's earlier ones, and a reply held to its floor or repaired, found in the cache
    # (prompt tokens evaluated / context: tests/test_llama_server.py, on a longer job whose
    # outline requests weigh less)
    assert stats.cached_prompt_tokens >= 0.5 * stats.prompt_tokens
    changes = result["review"]["outline_changes"]
    merged = sum("merged into" in change for change in changes)
    added = sum(" added, '" in change for change in changes)  # for the 3 sections asked for
    assert len(result["sections"]) == 3 - merged + added
    assert result["settings"]["backend"] == "openai"


def test_a_server_killed_mid_job_is_waited_for_and_the_job_completes(tmp_path, lw_home):
    port = free_port()
    proc = start_server(port, tmp_path / "home")
    url = f"http://127.0.0.1:{port}/v1"
    session = Session(JobSettings(prompt=PROMPT, words=100, sections=2, backend="openai",
                                  base_url=url), Server(url, retries=40, backoff=0.25))
    job = session.new_job()  # two sections, whatever outline the model would draft
    job.save_outline(Outline(PROMPT, 100, [Section("Choosing the leaves", "what to buy", 50),
                                           Section("Brewing a cup", "water and time", 50)]))
    job.update(state="outlined")
    outcome: dict = {}

    def write() -> None:
        try:
            outcome["result"] = session.run(job)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            outcome["error"] = exc

    writer = threading.Thread(target=write)
    writer.start()
    while writer.is_alive() and not (
            job.section_path(1).is_file() and job.partial_path(2).is_file()
            and job.partial_path(2).stat().st_size > 0):
        time.sleep(0.05)
    first = job.section_text(1)
    assert first, "section 1 was not written in time"
    proc.kill()  # kill -9 in the middle of section 2, the last
    proc.wait()
    proc = start_server(port, tmp_path / "home")  # the writer retries meanwhile
    try:
        writer.join()
    finally:
        stop(proc)
    assert "error" not in outcome, outcome.get("error")
    job = Job.open(str(job.dir), job.dir.parent)
    assert job.state == "done" and job.finished() == [1, 2]
    assert job.section_text(1) == first  # finished work is never written again
    document = Path(outcome["result"].document_path).read_text()
    titles = [section.title for section in job.outline().sections]  # the model may repeat one
    for title in titles:
        assert document.count(f"## {title}\n") == titles.count(title)
    assert not list(job.dir.glob("*.partial"))


def stop_after_first_section(session: Session, job: Job) -> None:
    cancel = threading.Event()

    def progress(event: Progress) -> None:
        if event.stage == "write" and event.step == 2:
            cancel.set()

    with pytest.raises(KeyboardInterrupt):
        session.run(job, progress=progress, cancel=cancel)


@pytest.mark.parametrize("start_on", ["server", "local"])
def test_a_job_moves_between_server_and_local(served, fake_model, start_on):
    remote = {"backend": "openai", "base_url": served}
    session = Session(JobSettings(prompt=PROMPT, words=160, sections=2,
                                  **(remote if start_on == "server" else {})))
    job = session.new_job()
    stop_after_first_section(session, job)
    first = job.section_text(1)
    where = (["--backend", "local"] if start_on == "server"
             else ["--backend", "openai", "--base-url", served])
    done = invoke("resume", job.id, "--json", *where, check=True)
    result = json.loads(done.stdout)
    assert [s["stop"] for s in result["sections"]][0] == "journal"
    assert result["settings"]["backend"] == ("local" if start_on == "server" else "openai")
    job = Job.open(str(job.dir), job.dir.parent)
    assert job.state == "done" and job.finished() == [1, 2] and job.section_text(1) == first
    # locally: section 2 (resumed), or the outline, section 1 and the start of section 2
    assert len(fake_model.requests) == (1 if start_on == "server" else 3)


def test_batch_runs_jobs_concurrently_and_skips_finished_ones(served, tmp_path):
    prompts = prompt_file(tmp_path, 50)
    out = tmp_path / "batch"
    args = ["batch", str(prompts), "--concurrency", "2", "-o", str(out), "--mode", "direct",
            "--backend", "openai", "--base-url", served, "--json"]
    report = json.loads(invoke(*args, check=True).stdout)
    assert report["concurrency"] == 2 and report["jobs"] == 3 and report["errors"] == 0
    assert report["generated_tokens"] > 0 and report["tokens_per_s"] > 0
    assert report["jobs_per_hour"] > 0 and report["latency_seconds"]["max"] > 0
    assert json.loads((out / "report.json").read_text())["jobs"] == 3
    for n in range(3):
        assert Job.open(f"p{n}", out / "jobs").state == "done"
    again = json.loads(invoke(*args, check=True).stdout)
    assert again["jobs"] == 0 and again["skipped"] == 3


def test_a_batch_goes_on_past_a_job_folder_whose_creation_was_cut_short(served, tmp_path):
    prompts, out = prompt_file(tmp_path, 50), tmp_path / "batch"
    (out / "jobs" / "p1" / "sections").mkdir(parents=True)  # killed before its job.json
    report = json.loads(invoke("batch", str(prompts), "-o", str(out), "--mode", "direct",
                               "--backend", "openai", "--base-url", served, "--json",
                               check=True).stdout)
    assert [row["error"] for row in report["results"]] == [None] * 3
    assert sorted(p.name for p in (out / "jobs").iterdir()) == ["p0", "p1", "p2"]
    (out / "jobs" / "p1").rename(out / "jobs" / "done-p1")
    (out / "jobs" / "p1").mkdir()
    (out / "jobs" / "p1" / "notes.txt").write_text("mine")  # not a job, and not lwlocal's
    proc = invoke("batch", str(prompts), "-o", str(out), "--mode", "direct", "--backend",
                  "openai", "--base-url", served, "--json")
    assert proc.returncode == 1
    assert [row["error"] is not None for row in json.loads(proc.stdout)["results"]] == [
        False, True, False]
    assert sorted(p.name for p in (out / "jobs").iterdir()) == ["done-p1", "p0", "p1", "p2"]


@pytest.mark.parametrize("command", [["batch"], ["dataset", "build"]])
def test_a_run_that_leaves_a_job_failed_exits_1(command, tmp_path):
    prompts, out = prompt_file(tmp_path, 50), tmp_path / "out"
    gone = f"http://127.0.0.1:{free_port()}/v1"  # no server there
    proc = invoke(*command, str(prompts), "-o", str(out), "--backend", "openai", "--base-url",
                  gone, "--retries", "0")
    assert proc.returncode == 1
    assert "connection failed" in json.loads((out / "report.json").read_text()
                                             )["results"][0]["error"]


def test_concurrency_needs_a_server(tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"id": "a", "prompt": "A note.", "length": 50}) + "\n")
    proc = invoke("batch", str(prompts), "--concurrency", "2", "-o", str(tmp_path / "out"))
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("lwlocal: error: --concurrency 2 needs --backend openai: a "
                                   "local model writes one job at a time (serve it with "
                                   "`lwlocal serve`)")


@pytest.mark.parametrize("extra", [
    {"response_format": {"type": "json_schema", "json_schema": {"schema": {"$ref": "#/nope"}}}},
    {"response_format": "json"},
    {"stream_options": True},
    {"messages": [{"role": "assistant", "content": "hi"}]},
    {"continue_final_message": True},  # nothing to go on with
    {"continue_final_message": True, "add_generation_prompt": True,
     "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hel"}]},
    {"continue_final_message": True, "response_format": {"type": "json_object"},
     "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "{"}]},
    {"ignore_eos": "yes"},
])
def test_requests_the_server_cannot_serve_are_answered_400(served, extra):
    body = {"messages": [{"role": "user", "content": "hi"}], "stream": True, **extra}
    response = httpx.post(f"{served}/chat/completions", json=body, timeout=HANG)
    assert response.status_code == 400 and response.json()["error"]["message"]


def test_a_reply_gone_on_with_is_the_reply(served):
    """``lwlocal serve`` goes on with a reply: tests/support/continuation.py."""
    check_replies_gone_on_with(OpenAIChat(Server(served)), Sampling(temperature=0.0, seed=5))
