"""The OpenAI-compatible backend against a loopback server that fails on cue: retried, then a
clear error, and the journal stays intact."""

from __future__ import annotations

import re

import pytest

from lwlocal.openai.client import OpenAIChat
from lwlocal.openai.endpoint import Server
from lwlocal.openai.retries import RETRY_AFTER_CAP
from lwlocal.runtime.chat import Hooks, Message
from lwlocal.runtime.engine import Sampling
from lwlocal.util.errors import LwlocalError, SettingError
from lwlocal.util.paths import jobs_dir
from lwlocal.write.jobs import Session
from lwlocal.write.outline import Outline, Section
from lwlocal.write.settings import JobSettings
from tests.support.cli import invoke
from tests.support.fake_openai import REPLY, STREAM_ERRORS, fake_server

ASK = [Message("user", "Describe a harbour.")]


def chat(url: str, retries: int = 4) -> OpenAIChat:
    return OpenAIChat(Server(url, retries=retries, backoff=0.01))


def test_failures_are_retried_and_streamed_text_restarts():
    with fake_server(["503", "malformed", "truncated", "ok"]) as server:
        backend = chat(server.url)
        pieces: list[str] = []
        result = backend.complete(ASK, Sampling(seed=7), max_tokens=100,
                                  hooks=Hooks(on_text=pieces.append, on_retry=pieces.clear))
    assert result.text == REPLY + " " and "".join(pieces) == result.text
    assert result.stop == "eog"
    assert len(server.requests) == 4
    sent = server.requests[-1]
    assert sent["model"] == "fake" and sent["seed"] == 7 and sent["stream"] is True
    # llama.cpp's DRY, as the local engine samples (servers without it ignore the fields)
    assert (sent["dry_multiplier"], sent["dry_base"], sent["dry_allowed_length"],
            sent["dry_penalty_last_n"]) == (0.8, 1.75, 2, 4096)
    assert sent["messages"] == [{"role": "user", "content": "Describe a harbour."}]
    assert backend.n_ctx == 4096  # from the server's max_model_len
    stats = backend.stats
    assert (stats.prompt_tokens, stats.cached_prompt_tokens) == (50, 20)
    assert stats.prompt_tokens_evaluated == 30 and stats.generated_tokens == len(REPLY.split())


def test_a_reply_that_may_not_end_yet_is_held_where_the_server_goes_on_with_replies():
    """As the local engine holds a reply: asked with end-of-turn banned, stopped once it may
    end, and gone on with (``continue_final_message``) in a request that may end it."""
    with fake_server(["ok"], owner="llamacpp") as server:
        backend = chat(server.url)
        pieces: list[str] = []
        result = backend.complete(ASK, Sampling(seed=3), max_tokens=100, hooks=Hooks(
            on_text=pieces.append, may_end=lambda: len(pieces) >= 5, min_tokens=60))
    assert backend.continues
    first, second = server.requests
    assert first["ignore_eos"] is True and "min_tokens" not in first
    assert "continue_final_message" not in first and first["max_tokens"] == 100
    held = " ".join(REPLY.split(" ")[:5]) + " "
    assert second["messages"] == [*first["messages"], {"role": "assistant", "content": held}]
    assert (second["continue_final_message"], second["add_generation_prompt"]) == (True, False)
    assert "ignore_eos" not in second and second["max_tokens"] == 100 - 5
    assert result.text == held + REPLY + " " == "".join(pieces) and result.stop == "eog"
    assert backend.stats.requests == 2


def test_a_server_that_does_not_go_on_with_replies_is_sent_min_tokens():
    with fake_server(["ok"]) as server:  # lists no owner: not known to continue a reply
        backend = chat(server.url)
        result = backend.complete(ASK, Sampling(), max_tokens=100,
                                  hooks=Hooks(may_end=lambda: False, min_tokens=60))
        with pytest.raises(LwlocalError, match="does not go on with a reply"):
            backend.continue_reply(ASK, "The harbour", Sampling(), max_tokens=10)
    [sent] = server.requests
    assert sent["min_tokens"] == 60 and "ignore_eos" not in sent
    assert not backend.continues and result.text == REPLY + " "


@pytest.mark.parametrize("behaviour, problem", [
    ("503", "HTTP 503: loading model"),
    ("malformed", "malformed JSON in the stream"),
    ("truncated", "the stream ended before the reply did"),
])
def test_a_failure_that_persists_ends_in_one_clear_line(behaviour, problem):
    with fake_server([behaviour]) as server:
        backend = chat(server.url, retries=2)
        with pytest.raises(LwlocalError) as error:
            backend.complete(ASK, Sampling(), max_tokens=100)
    message = str(error.value)
    assert message.startswith(server.url) and problem in message
    assert "gave up after 3 tries" in message and "\n" not in message
    assert len(server.requests) == 3


def test_a_server_that_goes_away_leaves_the_journal_intact(lw_home):
    # budgets the fake reply (15 words) meets, so the first section needs one request
    outline = Outline(prompt="A guide to harbours.", words=36, sections=[
        Section("Morning", "Boats leave.", 18), Section("Evening", "Boats return.", 18)])
    with fake_server(["ok", "503"]) as server:
        settings = JobSettings(prompt=outline.prompt, words=36, backend="openai",
                               base_url=server.url)
        session = Session(settings, Server(server.url, retries=2, backoff=0.01))
        job = session.new_job()
        with pytest.raises(LwlocalError, match="gave up after 3 tries"):
            session.run(job, outline)
    assert job.meta.settings.backend == "openai" and job.meta.settings.server_model == "fake"
    job = type(job).open(str(job.dir), job.dir.parent)
    assert job.state == "interrupted" and job.finished() == [1]
    assert job.section_text(1).startswith("The harbour wakes early.")
    assert job.section_text(2) is None


def test_refused_requests_are_not_retried():
    with fake_server(["ok"]) as server:
        backend = chat(server.url)
        with pytest.raises(LwlocalError, match="alternate user and assistant"):
            backend.complete([Message("assistant", "hi")], Sampling(), max_tokens=10)
    assert server.requests == []


@pytest.mark.parametrize("url", ["localhost:8765", "ftp://127.0.0.1/v1", "http:///v1"])
def test_an_address_that_is_not_http_is_refused_at_once(url):
    with pytest.raises(LwlocalError, match="give http"):
        OpenAIChat(Server(url, retries=5, backoff=10))


def test_an_unreachable_server_is_named():
    with pytest.raises(LwlocalError, match=r"http://127.0.0.1:9/v1: connection failed"):
        OpenAIChat(Server("http://127.0.0.1:9", retries=1, backoff=0.01))


# --server-model

def test_a_server_model_the_server_does_not_list_is_refused():
    with fake_server(["ok"], models=("fake", "other")) as server, \
            pytest.raises(SettingError) as error:
        OpenAIChat(Server(server.url, model="nope"))
    assert error.value.shown(lambda name: f"--{name.replace('_', '-')}") == (
        f"{server.url}: no model 'nope' on this server (it lists: fake, other); "
        "check --server-model")


def test_a_server_model_is_found_with_ollamas_default_tag():
    with fake_server(["ok"], models=("longwriter:latest", "other")) as server:
        backend = OpenAIChat(Server(server.url, model="longwriter"))
        backend.complete(ASK, Sampling(), max_tokens=10)
    assert backend.model == "longwriter:latest"
    assert server.requests[-1]["model"] == "longwriter:latest"


def test_a_server_model_is_found_among_llama_servers_aliases():
    with fake_server(["ok"], models=("smollm2.gguf",)) as server:
        server.aliases = ["smollm", "tiny"]
        assert OpenAIChat(Server(server.url, model="tiny")).model == "smollm2.gguf"


def test_write_with_an_unknown_server_model_stops_before_any_job(lw_home):
    with fake_server(["ok"]) as server:
        proc = invoke("write", "A note on harbours.", "--words", "40", "--backend", "openai",
                      "--base-url", server.url, "--server-model", "nope")
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == (f"lwlocal: error: {server.url}: no model 'nope' on this server "
                           "(it lists: fake); check --server-model\n")
    assert server.requests == [] and not list(jobs_dir().glob("*"))


# Retry-After

@pytest.mark.parametrize("answer, low, high", [
    ("429 retry-after=7", 7.0, 7.0),
    ("503 retry-after=date+100", 90.0, 100.0),  # an HTTP date: to the second
    ("503 retry-after=3600", None, None),  # longer than the cap: the cap
    ("503 retry-after=soon", 0.0, 0.01),  # not a delay: the backoff
])
def test_retry_after_is_waited_instead_of_the_backoff(answer, low, high):
    slept: list[float] = []
    with fake_server([answer, "ok"]) as server:
        backend = OpenAIChat(Server(server.url, retries=2, backoff=0.01), sleep=slept.append)
        assert backend.complete(ASK, Sampling(), max_tokens=100).text == REPLY + " "
    [wait] = slept
    cap = RETRY_AFTER_CAP
    assert (cap if low is None else low) <= wait <= (cap if high is None else high)


# errors inside a stream

@pytest.mark.parametrize("shape", ["llama-context", "llama-shift", "vllm-context"])
def test_an_error_in_the_stream_that_would_recur_fails_at_once(shape):
    with fake_server([f"error:{shape}"]) as server:
        backend = chat(server.url)
        with pytest.raises(LwlocalError) as error:
            backend.complete(ASK, Sampling(), max_tokens=100)
    message = str(error.value)
    assert message.startswith(f"{server.url}: the server refused the request mid-stream")
    assert STREAM_ERRORS[shape]["message"] in message and "\n" not in message
    assert "gave up" not in message and len(server.requests) == 1


@pytest.mark.parametrize("shape", ["llama-server", "vllm-server"])
def test_a_server_side_error_in_the_stream_is_retried(shape):
    with fake_server([f"error:{shape}", "ok"]) as server:
        result = chat(server.url).complete(ASK, Sampling(), max_tokens=100)
    assert result.text == REPLY + " " and len(server.requests) == 2


# one line per retry

def test_each_retry_is_one_line_on_stderr(lw_home):
    with fake_server(["503", "503 retry-after=0", "ok"]) as server:
        proc = invoke("write", "A note on harbours.", "--words", "18", "--mode", "direct",
                      "--backend", "openai", "--base-url", server.url, "--retries", "3",
                      check=True)
    lines = [line for line in proc.stderr.splitlines() if " try " in line]
    url = re.escape(server.url)
    assert len(lines) == 2, proc.stderr
    assert re.fullmatch(rf"lwlocal: {url}: try 1 of 4 failed \(HTTP 503: loading model\); "
                        r"trying again in \d+\.\d s", lines[0]), lines[0]
    assert lines[1] == (f"lwlocal: {server.url}: try 2 of 4 failed (HTTP 503: loading model); "
                        "trying again in 0.0 s, as the server asked (Retry-After)")
    assert len(server.requests) == 3
