"""``lwlocal serve`` as other people's software sees it: the official ``openai`` Python client,
and ``curl`` running the examples of docs/servers.md, against a loopback server on the default
model (``served``); where the model is not the point (an API key, a failure mid-stream), against
uvicorn serving the fake chat backend in this process."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import uvicorn
from pydantic import BaseModel, Field

from lwlocal.models.catalogue import DEFAULT_MODEL
from lwlocal.openai.listen import bind
from lwlocal.openai.server import ModelServer
from tests.support.bounds import HANG
from tests.support.fake_chat import FakeChat, FakeModel
from tests.support.server import CTX

DOCS = Path(__file__).parent.parent / "docs" / "servers.md"
ASK = [{"role": "user", "content": "Name three colours."}]


def sdk(url: str, key: str = "none") -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key=key, max_retries=0, timeout=HANG)


@pytest.fixture(scope="module")
def client(served: str) -> openai.OpenAI:
    return sdk(served)


class Place(BaseModel):
    """What the JSON-schema test asks for, as the client's own ``parse`` takes a schema."""

    name: str = Field(max_length=24)
    coastal: bool


# the official client, on the default model

def test_models_are_listed_and_retrieved(client):
    [card] = client.models.list().data
    assert card.id == DEFAULT_MODEL and card.object == "model" and card.owned_by == "lwlocal"
    assert isinstance(card.created, int) and card.created > 0
    assert (card.model_extra or {}).get("max_model_len") == int(CTX)
    assert client.models.retrieve(DEFAULT_MODEL).id == DEFAULT_MODEL
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-nothing")


def test_a_completion_streamed_and_not_is_the_same_reply(client):
    asked = {"model": DEFAULT_MODEL, "messages": ASK, "max_tokens": 24, "temperature": 0,
             "seed": 3}
    whole = client.chat.completions.create(**asked)
    [choice] = whole.choices
    assert whole.object == "chat.completion" and whole.model == DEFAULT_MODEL
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    usage = whole.usage
    assert usage is not None and usage.prompt_tokens > len(ASK[0]["content"].split())
    assert 0 < usage.completion_tokens <= 24
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens

    chunks = list(client.chat.completions.create(
        **asked, stream=True, stream_options={"include_usage": True}))
    *replies, last = chunks
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    assert all(c.usage is None for c in replies)
    text = "".join(c.choices[0].delta.content or "" for c in replies)
    assert text == choice.message.content
    assert [c.choices[0].finish_reason for c in replies][-1] == choice.finish_reason
    # the usage chunk comes last, without choices, and counts what was streamed
    assert last.choices == [] and last.usage is not None
    assert last.usage.prompt_tokens == usage.prompt_tokens
    assert last.usage.completion_tokens == usage.completion_tokens
    assert last.usage.total_tokens == usage.total_tokens
    details = last.usage.prompt_tokens_details
    assert details is not None and 0 < (details.cached_tokens or 0) <= usage.prompt_tokens


def test_a_stream_without_include_usage_has_no_usage(client):
    chunks = list(client.chat.completions.create(
        model=DEFAULT_MODEL, messages=ASK, max_tokens=4, stream=True))
    assert chunks and all(c.usage is None and c.choices for c in chunks)


def test_a_json_schema_reply_parses_and_follows_it(client):
    schema = Place.model_json_schema() | {"additionalProperties": False}
    reply = client.chat.completions.create(
        model=DEFAULT_MODEL, max_tokens=200, temperature=0,
        messages=[{"role": "user", "content": "Describe Lisbon as JSON."}],
        response_format={"type": "json_schema", "json_schema": {
            "name": "place", "schema": schema, "strict": True}})
    content = reply.choices[0].message.content
    assert content is not None
    data = json.loads(content)
    assert set(data) == {"name", "coastal"}, data
    Place.model_validate(data)  # the types and the name's length
    # the client's own structured output, which builds its schema from the model class
    parsed = client.chat.completions.parse(
        model=DEFAULT_MODEL, max_tokens=200, temperature=0, response_format=Place,
        messages=[{"role": "user", "content": "Describe Porto as JSON."}])
    assert isinstance(parsed.choices[0].message.parsed, Place)
    # held open (vLLM's min_tokens, ignore_eos): the reply still ends with its value, and the
    # server lives on
    held = client.chat.completions.create(
        model=DEFAULT_MODEL, max_tokens=200, temperature=0,
        messages=[{"role": "user", "content": "Describe Lisbon as JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "place",
                                                                "schema": schema}},
        extra_body={"ignore_eos": True, "min_tokens": 150})
    assert Place.model_validate(json.loads(held.choices[0].message.content or ""))


@pytest.mark.parametrize("bad", [
    {"temperature": 500},
    {"messages": [{"role": "assistant", "content": "hi"}]},
    {"response_format": {"type": "json_schema", "json_schema": {
        "name": "x", "schema": {"$ref": "#/nowhere"}}}},
])
def test_a_bad_request_is_the_clients_bad_request_error(client, bad):
    with pytest.raises(openai.BadRequestError) as error:
        client.chat.completions.create(**{"model": DEFAULT_MODEL, "messages": ASK, **bad})
    assert error.value.status_code == 400
    body = error.value.body
    assert isinstance(body, dict) and set(body) == {"message", "type", "param", "code"}
    assert body["type"] == "invalid_request_error" and body["message"]


def test_an_unknown_model_is_the_clients_not_found_error(client):
    with pytest.raises(openai.NotFoundError) as error:
        client.chat.completions.create(model="gpt-4o", messages=ASK, max_tokens=4)
    body = error.value.body
    assert isinstance(body, dict) and body["code"] == "model_not_found"
    assert body["param"] == "model" and "gpt-4o" in body["message"]


# the official client, on the fake backend (the model is not the point)

@pytest.fixture
def fake_served() -> Iterator[tuple[str, FakeModel]]:
    """uvicorn serving the fake chat backend with the API key ``s3cret``, in a thread."""
    chat = FakeChat()
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(
        ModelServer(chat, "fake", api_key="s3cret").app(),  # type: ignore[arg-type]
        log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + HANG
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1", chat.model
    finally:
        server.should_exit = True
        thread.join(HANG)
        sock.close()


def test_a_wrong_api_key_is_the_clients_authentication_error(fake_served):
    url, _ = fake_served
    for key in ("wrong", "s3cret2"):
        with pytest.raises(openai.AuthenticationError) as error:
            sdk(url, key).chat.completions.create(model="fake", messages=ASK)
        assert isinstance(error.value.body, dict)
        assert error.value.body["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        sdk(url, "wrong").models.list()
    assert sdk(url, "s3cret").chat.completions.create(model="fake", messages=ASK).choices


def test_a_failure_mid_stream_is_the_clients_api_error(fake_served):
    url, model = fake_served

    def fail(request: int, piece: int, hooks: object) -> None:
        if piece == 2:
            raise RuntimeError("the engine failed")

    model.on_piece = fail
    stream = sdk(url, "s3cret").chat.completions.create(model="fake", messages=ASK, stream=True)
    received: list[str] = []
    with pytest.raises(openai.APIError) as error:
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received).strip()  # the pieces before the failure arrived
    assert error.value.message == "the engine failed"
    assert error.value.body == {"message": "the engine failed", "type": "server_error",
                                "param": None, "code": 500}


# curl, running the examples of docs/servers.md

def curl_examples() -> list[str]:
    """The ```sh blocks of docs/servers.md that run curl."""
    blocks = re.findall(r"```sh\n(.*?)```", DOCS.read_text(), re.DOTALL)
    return [block for block in blocks if block.lstrip().startswith("curl ")]


def run_example(example: str, url: str) -> tuple[int, str]:
    """``example`` run by bash against the server at ``url``, with ``curl`` the real one made
    to print the status after the body; returns the status and the body."""
    script = ('curl() { command curl --silent --show-error --write-out "\\n%{http_code}" '
              '"$@"; }\n' + example.replace("http://127.0.0.1:8080/v1", url))
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                          timeout=HANG)
    assert done.returncode == 0, done.stderr
    body, _, status = done.stdout.rpartition("\n")
    return int(status), body


def test_the_docs_have_curl_examples():
    examples = curl_examples()
    assert len(examples) >= 3
    assert all("http://127.0.0.1:8080/v1" in example for example in examples)


@pytest.mark.skipif(shutil.which("curl") is None, reason="no curl on this machine")
@pytest.mark.parametrize("index", range(len(curl_examples())))
def test_a_curl_example_from_the_docs_runs(served, index):
    example = curl_examples()[index]
    status, body = run_example(example, served)
    assert status == 200, body
    if '"stream": true' in example:
        events = [line[len("data: "):] for line in body.splitlines() if line]
        assert all(line.startswith("data: ") for line in body.splitlines() if line), body
        assert events[-1] == "[DONE]"
        chunks = [json.loads(event) for event in events[:-1]]
        assert all(c["object"] == "chat.completion.chunk" for c in chunks)
        assert "".join(c["choices"][0]["delta"].get("content", "")
                       for c in chunks if c["choices"]).strip()
        if '"include_usage": true' in example:
            assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
        return
    answer = json.loads(body)
    if answer["object"] == "list":
        assert answer["data"][0]["id"] == DEFAULT_MODEL
        return
    assert answer["object"] == "chat.completion"
    content = answer["choices"][0]["message"]["content"]
    assert content.strip() and answer["usage"]["completion_tokens"] > 0
    if "json_schema" in example:
        assert isinstance(json.loads(content), dict)


def test_curl_gets_an_openai_error_for_a_bad_request(served):
    status, body = run_example(
        f"curl {served}/chat/completions -H 'Content-Type: application/json' -d '{{}}'", served)
    assert status == 400 and set(json.loads(body)["error"]) == {"message", "type", "param",
                                                                  "code"}
