"""The OpenAI backend against llama.cpp's own ``llama-server`` (built from the llama.cpp the
engine vendors, by ``make llama-server``), on the default model: an AgentWrite job and the
server's prompt cache, greedy parity with the local engine, the outline's JSON schema through
``response_format``, ``resume`` after ``kill -9`` of the server, and sticky slots."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lwlocal.openai.client import OpenAIChat
from lwlocal.openai.endpoint import Server
from lwlocal.runtime.chat import Message
from lwlocal.runtime.engine import Sampling
from lwlocal.util.errors import LwlocalError
from lwlocal.write.jobs import Session
from lwlocal.write.journal import Job
from lwlocal.write.outline import outline_prompt, outline_schema, parse_model_outline
from lwlocal.write.settings import JobSettings
from tests.support.cli import invoke
from tests.support.continuation import check_replies_gone_on_with
from tests.support.llama_server import CHATML, LlamaServer, running, start
from tests.support.prompts import prompt_file

pytestmark = pytest.mark.model

PROMPT = "Write a short guide to brewing green tea."
PARITY_PROMPT = "Write a short note on why rivers flood in spring."
CTX = 4096
SERVER_ARGS = ("--ctx-size", str(CTX), *CHATML, "--flash-attn", "on")
# the KV cache the plan gives the local engine on the CPU (`lwlocal plan --format llama-server`)
PLANNED_KV = ("--cache-type-k", "q8_0", "--cache-type-v", "q8_0")


@pytest.fixture(scope="module")
def llama_server(default_model: Path, tmp_path_factory) -> Iterator[LlamaServer]:
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with running(default_model, log, *SERVER_ARGS, "--parallel", "2") as server:
        yield server


def test_an_agentwrite_job_uses_the_servers_prompt_cache(llama_server, lw_home):
    done = invoke("write", PROMPT, "--words", "240", "--sections", "3", "--backend", "openai",
                  "--base-url", llama_server.url, "--json", check=True)
    result = json.loads(done.stdout)
    assert len(result["sections"]) == 3
    for section in result["sections"]:  # held near their budgets over the API too
        assert section["written"] <= section["planned"] * 1.3 + 1
    settings = result["settings"]
    assert (settings["backend"], settings["base_url"]) == ("openai", llama_server.url)
    job = Job.open(result["job"], lw_home / "jobs")
    assert job.state == "done" and job.meta.settings.base_url == llama_server.url
    assert job.meta.settings.server_model  # the name llama-server lists
    # the outline and three sections: each request's earlier turns come from the server's cache
    assert result["prompt_tokens_evaluated"] <= 1.15 * result["context_tokens"]
    assert result["cached_prompt_tokens"] >= 0.4 * result["prompt_tokens"]
    # of two slots, the job keeps to the one idle when it began: every request names it (a
    # request sent as the last one's stream closed went to the other, empty, slot)
    served = llama_server.log.read_text()
    assert served.count("selected slot by ") == served.count("selected slot by id") > 0


def test_a_greedy_job_writes_what_the_local_engine_writes(default_model, tmp_path, lw_home):
    """On a fresh server: KV the server kept from another request was computed in batches of
    another shape, whose float sums differ in the last bits and can turn a near tie. No
    repetition penalty: llama-server's counts the prompt's last tokens, the engine's does not;
    DRY the same on both (its dry_* fields). An instruction whose greedy text the writer has
    nothing to repair in: a repair goes differently on each (a local model is kept from the
    token a faulty start began with, a server's is asked again), so a test of the protocol
    needs one without."""
    # a length past where the model would end its turn (the greedy text ends its first
    # sentence at 13 words): the local engine holds the reply to its floor, llama-server is
    # asked with end-of-turn banned and then to go on with the reply
    greedy = {"mode": "direct", "words": 40, "n_ctx": CTX,
              "sampling": Sampling(temperature=0.0, seed=5, repeat_penalty=1.0)}
    local = Session(JobSettings(prompt=PARITY_PROMPT, **greedy))
    done = local.run(local.new_job())
    assert not done.sections[0].repairs
    local_text = Path(done.document_path).read_text()
    with running(default_model, tmp_path / "server.log", *SERVER_ARGS, *PLANNED_KV) as server:
        remote = Session(JobSettings(prompt=PARITY_PROMPT, backend="openai",
                                     base_url=server.url, **greedy))
        remote_text = Path(remote.run(remote.new_job()).document_path).read_text()
    assert len(local_text.split()) >= 32 and remote_text == local_text


def test_a_reply_gone_on_with_is_the_reply_and_one_held_goes_on(llama_server):
    """llama-server goes on with a reply: tests/support/continuation.py."""
    check_replies_gone_on_with(OpenAIChat(Server(llama_server.url)),
                               Sampling(temperature=0.0, seed=5, repeat_penalty=1.0))


def test_the_outline_schema_holds_through_response_format(llama_server):
    chat = OpenAIChat(Server(llama_server.url))
    sections = (3, 4)
    reply = chat.complete([Message("user", outline_prompt(PROMPT, 400, sections))],
                          Sampling(temperature=0.0), max_tokens=600,
                          json_schema=outline_schema(sections))
    outline = parse_model_outline(reply.text, PROMPT, 400)  # raises on a reply off the schema
    assert sections[0] <= len(outline.sections) <= sections[1]
    assert json.loads(reply.text)  # the reply is the JSON itself, nothing around it


def test_resume_after_kill_9_of_the_server_loses_nothing(default_model, tmp_path, lw_home):
    log = tmp_path / "server.log"
    server = start(default_model, log, *SERVER_ARGS)
    session = Session(JobSettings(prompt=PROMPT, words=120, sections=3, backend="openai",
                                  base_url=server.url), Server(server.url, retries=0))
    job = session.new_job()
    outcome: dict = {}

    def write() -> None:
        try:
            session.run(job)
        except LwlocalError as exc:
            outcome["error"] = exc

    writer = threading.Thread(target=write)
    writer.start()
    try:
        while writer.is_alive() and not (job.section_path(1).is_file()
                                         and job.partial_path(2).is_file()
                                         and job.partial_path(2).stat().st_size > 0):
            time.sleep(0.05)
        assert writer.is_alive(), "the job ended before section 2 was under way"
        first = job.section_text(1)
        server.proc.kill()  # kill -9 in the middle of section 2
        server.proc.wait()
        writer.join()
        assert "error" in outcome and "connection failed" in str(outcome["error"])
        assert Job.open(str(job.dir), job.dir.parent).state == "interrupted"
        server = start(default_model, log, *SERVER_ARGS, port=server.port)
        done = json.loads(invoke("resume", job.id, "--json", check=True).stdout)
    finally:
        server.stop()
    job = Job.open(str(job.dir), job.dir.parent)
    outline = job.outline()
    assert outline is not None  # three sections asked for; the outline check may merge two
    assert job.state == "done" and job.finished() == list(range(1, len(outline.sections) + 1))
    assert job.section_text(1) == first  # finished work is never written again
    assert done["sections"][0]["stop"] == "journal"
    assert not list(job.dir.glob("*.partial"))


def test_batch_keeps_each_worker_to_its_own_slot(default_model, tmp_path):
    prompts = prompt_file(tmp_path, 80)
    log = tmp_path / "server.log"
    with running(default_model, log, *SERVER_ARGS, "--parallel", "2") as server:
        report = json.loads(invoke(
            "batch", str(prompts), "--concurrency", "2", "-o", str(tmp_path / "out"),
            "--backend", "openai", "--base-url", server.url, "--json", check=True).stdout)
    assert report["jobs"] == 3 and report["errors"] == 0
    # llama-server logs how it chose each request's slot: all by the id lwlocal sent
    served = log.read_text()
    requests = served.count("processing task")
    assert requests >= 3 * 2  # per job: the outline and one section at least
    # a slot is chosen for every request (one the client cancels too), each by its id
    assert served.count("selected slot by id") >= requests
    assert served.count("selected slot by ") == served.count("selected slot by id")
