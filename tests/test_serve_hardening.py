"""``lwlocal serve`` against bad input and abusive clients, in process: malformed requests are
400s with OpenAI-style bodies, large bodies 413s, clients that hang up or stop reading have their
generation cancelled (in one log line), the event loop never tokenizes, and an API key guards
every route but /health. The fake chat backend (tests/support/fake_chat.py) stands in for the
model where the model is not the point."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import json
import logging
import socket
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from itertools import pairwise
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from lwlocal.openai import middleware
from lwlocal.openai.listen import SEND_BUFFER, bind, is_loopback
from lwlocal.openai.protocol import MAX_JSON_DEPTH
from lwlocal.openai.server import ModelServer
from lwlocal.openai.tcp_backlog import BACKLOG_LIMIT
from lwlocal.runtime.chat import Message
from lwlocal.util.errors import LwlocalError
from tests.support.bounds import HANG
from tests.support.fake_chat import FakeChat

CHAT = "/v1/chat/completions"
HELLO = {"messages": [{"role": "user", "content": "Say hi in 3 words."}]}  # a short reply


def held_after_a_word() -> FakeChat:
    """A fake whose first reply says a word and then waits until it is cancelled."""
    chat = FakeChat(paced=True)
    chat.release(1)
    return chat


def make_app(chat: FakeChat, **options: Any):
    return ModelServer(chat, "fake", **options).app()  # type: ignore[arg-type]


def client(chat: FakeChat, **options: Any) -> TestClient:
    return TestClient(make_app(chat, **options), raise_server_exceptions=False)


def assert_openai_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    return error["message"]


def nested(depth: int) -> bytes:
    return json.dumps({**HELLO, "metadata": None}).replace(
        "null", "[" * depth + "]" * depth).encode()


@pytest.mark.parametrize("body", [
    b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": Infinity}',
    b'{"messages": [{"role": "user", "content": "hi"}], "temperature": NaN}',
    b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1e400}',
    json.dumps({**HELLO, "max_tokens": 1.5}).encode(),
    json.dumps({**HELLO, "top_k": 2**40}).encode(),
    json.dumps({**HELLO, "dry_multiplier": -1}).encode(),
    json.dumps({**HELLO, "dry_allowed_length": 0.5}).encode(),
    json.dumps({**HELLO, "temperature": "hot"}).encode(),
    json.dumps({**HELLO, "stream": "yes"}).encode(),
    json.dumps({**HELLO, "response_format": {"type": "json_schema", "json_schema": []}}).encode(),
    json.dumps({**HELLO, "response_format": {"type": "json_object", "schema": 3}}).encode(),
    json.dumps({**HELLO, "response_format": {"type": "json_schema", "json_schema": {
        "schema": {"type": "string", "maxLength": 100_000}}}}).encode(),
    json.dumps({**HELLO, "response_format": {"type": "json_schema", "json_schema": {
        "schema": {"type": "array", "minItems": 10**9}}}}).encode(),
    json.dumps({**HELLO, "response_format": {"type": "json_schema", "json_schema": {
        "schema": {"type": "string", "pattern": "^((a{999}){999}){999}$"}}}}).encode(),
    json.dumps({"messages": [{"role": "user", "content": [{"text": 5}]}]}).encode(),
    json.dumps({"messages": [{"role": "user", "content": [7]}]}).encode(),
    json.dumps({"messages": [{"role": "user", "content": None}]}).encode(),
    json.dumps({"messages": [{"content": "hi"}]}).encode(),
    json.dumps({"messages": ["hi"]}).encode(),
    json.dumps({"messages": []}).encode(),
    b'{"messages": [{"role": "user", "content": "\\ud800"}]}',  # a lone surrogate
    b'{"messages": [{"role": "user", "content": "caf\xe9"}]}',  # Latin-1, not UTF-8
    b"[]", b"", b"{",
    nested(MAX_JSON_DEPTH), nested(10_000), nested(100_000),
], ids=lambda body: body[:60].decode("utf-8", "replace"))
def test_every_malformed_request_is_a_400_with_an_openai_error(body, caplog):
    response = client(FakeChat()).post(CHAT, content=body)
    assert_openai_error(response, 400)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_dry_is_off_unless_a_request_asks_as_on_llama_server():
    from lwlocal.openai.protocol import parse_request

    assert parse_request({**HELLO}).sampling.dry_multiplier == 0.0
    asked = parse_request({**HELLO, "dry_multiplier": 0.8, "dry_base": 2.0,
                           "dry_allowed_length": 3, "dry_penalty_last_n": 512}).sampling
    assert (asked.dry_multiplier, asked.dry_base, asked.dry_allowed_length,
            asked.dry_penalty_last_n) == (0.8, 2.0, 3, 512)


def test_a_request_nested_as_deep_as_allowed_is_served():
    chat = FakeChat()
    response = client(chat).post(CHAT, content=nested(MAX_JSON_DEPTH - 2))
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == chat.model.replies[0].text


def test_a_body_over_the_limit_is_a_413_before_it_is_read():
    app = client(FakeChat(), max_body=1000)
    assert_openai_error(app.post(CHAT, content=b" " * 1001), 413)

    def chunks():  # no Content-Length: refused once the count passes the limit
        yield from [b" " * 600] * 100

    assert_openai_error(app.post(CHAT, content=chunks()), 413)
    assert app.post(CHAT, json=HELLO).status_code == 200


def test_the_default_body_limit_refuses_a_5_mb_body():
    message = assert_openai_error(client(FakeChat()).post(CHAT, content=b"x" * 5_000_000), 413)
    assert "limit" in message


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "json"])
def test_a_body_that_is_not_json_by_its_content_type_is_a_415(content_type):
    chat = FakeChat()
    response = client(chat).post(CHAT, content=json.dumps(HELLO),
                                 headers={"Content-Type": content_type})
    assert response.status_code == 415, response.text
    assert response.json()["error"]["message"].startswith(f"Content-Type {content_type!r}: ")
    assert chat.model.requests == []


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                          "Application/JSON", "application/vnd.api+json"])
def test_json_content_types_are_served(content_type):
    response = client(FakeChat()).post(CHAT, content=json.dumps(HELLO),
                                       headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text


def test_unknown_routes_and_methods_answer_openai_errors():
    app = client(FakeChat())
    assert_openai_error(app.get("/v1/nothing"), 404)
    assert_openai_error(app.get(CHAT), 405)


# A client that can hang up or stop reading, driving the app as uvicorn does.

class Peer:
    """The other end of one connection: sends ``body`` (with ``cut``, only its first half, as
    if more were coming), then hangs up when ``hang_up`` is set; with ``stall``, never finishes
    taking the first piece of the response body."""

    def __init__(self, body: bytes, *, cut: bool = False, stall: bool = False) -> None:
        self.parts = [body[:len(body) // 2]] if cut else [body]
        self.cut, self.stall = cut, stall
        self.hang_up = asyncio.Event()
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        if self.parts:
            part = self.parts.pop(0)
            return {"type": "http.request", "body": part, "more_body": self.cut}
        await self.hang_up.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if self.stall and message["type"] == "http.response.body":
            await asyncio.Event().wait()  # a client whose window never opens
        self.sent.append(message)

    def scope(self) -> dict[str, Any]:
        return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
                "http_version": "1.1", "method": "POST", "scheme": "http", "path": CHAT,
                "raw_path": CHAT.encode(), "query_string": b"", "root_path": "",
                "headers": [(b"content-type", b"application/json")],
                "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8080)}


async def until(event: threading.Event) -> bool:
    """Wait for a thread's event without blocking the event loop."""
    return await asyncio.to_thread(event.wait, HANG)


def serve_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the server logged; no record may carry a traceback."""
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    return [r.getMessage() for r in caplog.records if r.name == "lwlocal.serve"]


def test_a_client_that_hangs_up_while_sending_is_one_log_line(caplog):
    caplog.set_level(logging.INFO)
    peer = Peer(json.dumps(HELLO).encode(), cut=True)
    peer.hang_up.set()
    chat = FakeChat()
    asyncio.run(make_app(chat)(peer.scope(), peer.receive, peer.send))
    assert serve_lines(caplog) == ["127.0.0.1:40000 went away while sending its request"]
    assert not chat.started.is_set()


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_that_hangs_up_cancels_its_generation_and_frees_the_model(stream, caplog):
    caplog.set_level(logging.INFO)
    chat = held_after_a_word()
    app = make_app(chat)

    async def main() -> dict[str, Any]:
        peer = Peer(json.dumps({**HELLO, "stream": stream}).encode())
        answering = asyncio.ensure_future(app(peer.scope(), peer.receive, peer.send))
        assert await until(chat.started)
        peer.hang_up.set()
        await answering
        assert await until(chat.returned)
        chat.release_all()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app),
                                     base_url="http://lwlocal") as later:
            return (await later.post(CHAT, json=HELLO)).json()

    following = asyncio.run(main())
    replies = chat.model.replies
    assert [r.stop for r in replies] == ["cancelled", "eog"]  # the next had the model at once
    assert following["choices"][0]["message"]["content"] == replies[1].text
    assert serve_lines(caplog) == ["127.0.0.1:40000 went away: its generation was cancelled"]


def test_a_streaming_client_that_stops_reading_is_cut_off(caplog):
    caplog.set_level(logging.INFO)
    chat = held_after_a_word()
    app = make_app(chat, stall_seconds=0.05)

    async def main() -> None:
        peer = Peer(json.dumps({**HELLO, "stream": True}).encode(), stall=True)
        answering = asyncio.ensure_future(app(peer.scope(), peer.receive, peer.send))
        try:
            assert await until(chat.returned)
        finally:
            answering.cancel()

    asyncio.run(main())
    assert [r.stop for r in chat.model.replies] == ["cancelled"]
    assert serve_lines(caplog) == [
        "127.0.0.1:40000 read nothing for 0.05 s: its generation was cancelled"]


@contextlib.contextmanager
def serving(app: Any) -> Iterator[int]:
    """``app`` served by uvicorn on 127.0.0.1 (in a thread), as ``lwlocal serve`` serves it;
    its port."""
    import uvicorn

    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(int(HANG * 100)):  # until it listens (bounded: HANG)
        if server.started or not thread.is_alive():
            break
        time.sleep(0.01)
    assert server.started
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(HANG)


STREAM_LONG = {"messages": [{"role": "user", "content": "Write 90000 words on tea."}],
               "max_tokens": 90000, "stream": True}
CLIENT_BUFFER = 16 << 20  # bytes


def big_buffer(sock: socket.socket) -> None:
    """A receive buffer as large as a client may ask for (SO_RCVBUFFORCE, as root, goes past
    the system's cap): what it holds unread, a send never waits for."""
    force = getattr(socket, "SO_RCVBUFFORCE", None)
    try:
        sock.setsockopt(socket.SOL_SOCKET, force or socket.SO_RCVBUF, CLIENT_BUFFER)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CLIENT_BUFFER)


def test_a_client_on_loopback_that_never_reads_is_dropped_and_the_model_freed(caplog):
    """A real server and a client that sends a streaming request and reads nothing: its
    receive buffer (16 MiB, as a client may ask) would take minutes of a real model's stream
    before a send waited; it is cut off once it has left BACKLOG_LIMIT bytes unread for
    stall_seconds, and the next request has the model."""
    caplog.set_level(logging.INFO)
    chat = FakeChat(200_000, paced=True)
    with serving(make_app(chat, stall_seconds=0.2)) as port:
        body = json.dumps(STREAM_LONG).encode()
        with socket.socket() as silent:
            big_buffer(silent)
            silent.connect(("127.0.0.1", port))
            silent.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: lwlocal\r\n"
                           b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                           % len(body) + body)
            released = 0
            while not chat.returned.wait(0.005) and released < 50000:  # a word at a time
                chat.release(10)
                released += 10
            assert [r.stop for r in chat.model.replies] == ["cancelled"], released
            chat.release_all()
            after = httpx.post(f"http://127.0.0.1:{port}{CHAT}", json=HELLO, timeout=HANG)
    assert after.status_code == 200 and [r.stop for r in chat.model.replies][1:] == ["eog"]
    # cut off within about BACKLOG_LIMIT's worth of words, not the megabytes its buffer takes
    # (40,350 words here before: at a real model's 100 words/s, 400 s of holding the model)
    assert released * 180 < 8 * BACKLOG_LIMIT, released
    assert any(line.endswith("read nothing for 0.2 s: its generation was cancelled")
               for line in serve_lines(caplog))


def test_health_answers_while_a_prompt_is_tokenized(monkeypatch):
    chat = FakeChat()
    counting, gate, released = threading.Event(), threading.Event(), []
    count = chat.count

    def count_when_let(messages: list[Message]) -> int:
        counting.set()
        released.append(gate.wait(HANG))
        return count(messages)

    monkeypatch.setattr(chat, "count", count_when_let)
    app = make_app(chat)

    async def main() -> tuple[int, int]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app),
                                     base_url="http://lwlocal") as http:
            completion = asyncio.ensure_future(http.post(CHAT, json=HELLO))
            assert await until(counting)
            health = await http.get("/health")
            gate.set()
            return health.status_code, (await completion).status_code

    assert asyncio.run(main()) == (200, 200)
    assert released == [True]  # the count waited for the test, not for its failsafe


def test_nothing_accumulates_per_request():
    chat = FakeChat()
    app = client(chat, max_body=10_000)
    requests: list[Callable[[], httpx.Response]] = [
        lambda: app.post(CHAT, json=HELLO),
        lambda: app.post(CHAT, json={**HELLO, "stream": True,
                                     "stream_options": {"include_usage": True}}),
        lambda: app.post(CHAT, json={**HELLO, "max_tokens": 0}),
        lambda: app.post(CHAT, content=b"x" * 20_000),
        lambda: app.get("/health"),
    ]

    def run(rounds: int) -> None:
        for _ in range(rounds):
            for request in requests:
                request()

    def allocated() -> int:
        chat.model.requests.clear()  # the fake's own record of what it was asked aside
        chat.model.replies.clear()
        gc.collect()
        snapshot = tracemalloc.take_snapshot()
        return sum(stat.size for stat in snapshot.filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]).statistics("filename"))

    rounds = 40  # a window of 200 requests
    run(rounds)  # caches and thread pools fill up
    tracemalloc.start()
    try:
        sizes = [allocated()]
        for _ in range(3):
            run(rounds)
            sizes.append(allocated())
    finally:
        tracemalloc.stop()
    growths = [after - before for before, after in pairwise(sizes)]
    # A leak grows in every window; a one-off (a new worker thread, a cache filling) in one of
    # them only.
    assert min(growths) < 100 * rounds * len(requests), growths  # under 100 bytes a request


# API key

def test_an_api_key_guards_every_route_but_health(monkeypatch):
    compared: list[bytes] = []
    constant_time = hmac.compare_digest

    def compare(given: bytes, key: bytes) -> bool:
        compared.append(given)
        return constant_time(given, key)

    monkeypatch.setattr(middleware.hmac, "compare_digest", compare)
    app = client(FakeChat(), api_key="s3cret")
    assert app.get("/health").status_code == 200
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"},
                    {"Authorization": "Basic s3cret"}):
        assert_openai_error(app.post(CHAT, json=HELLO, headers=headers), 401)
        assert_openai_error(app.get("/v1/models", headers=headers), 401)
    good = {"Authorization": "Bearer s3cret"}
    assert app.post(CHAT, json=HELLO, headers=good).status_code == 200
    assert app.get("/v1/models", headers=good).json()["data"][0]["id"] == "fake"
    assert b"s3cret" in compared  # through the constant-time comparison


def test_loopback_hosts():
    assert all(map(is_loopback, ["127.0.0.1", "127.8.0.1", "::1", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.168.1.4", "example.org"]))


@pytest.mark.parametrize(("args", "env", "warned", "key"), [
    (["--host", "0.0.0.0"], {}, True, None),
    (["--host", "0.0.0.0", "--api-key", "k1"], {}, False, "k1"),
    (["--host", "0.0.0.0"], {"LWLOCAL_API_KEY": "k2"}, False, "k2"),
    ([], {}, False, None),
])
def test_serve_warns_beyond_loopback_without_a_key(monkeypatch, default_model, args, env, warned,
                                                   key):
    import uvicorn

    from lwlocal.cli.serving import serve

    served: list[tuple[uvicorn.Config, list[socket.socket]]] = []
    monkeypatch.setattr(uvicorn.Server, "run",
                        lambda self, sockets: served.append((self.config, sockets)))
    monkeypatch.delenv("LWLOCAL_API_KEY", raising=False)
    result = CliRunner().invoke(serve, ["--port", "0", "--ctx", "1024", "--words", "200", *args],
                                env=env)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert lines == (["warning: --host 0.0.0.0 is reachable beyond this machine and there is "
                      "no --api-key: anyone who reaches it can use the model"] if warned else [])
    [(config, [sock])] = served
    with sock:  # bound before the model loaded, its send buffer small
        assert sock.getsockname()[0] == ("0.0.0.0" if args else "127.0.0.1")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) <= 2 * SEND_BUFFER
    assert config.log_config["loggers"]["lwlocal.serve"]["level"] == "INFO"
    app = TestClient(config.app)
    assert app.get("/v1/models").status_code == (200 if key is None else 401)
    if key is not None:
        good = app.get("/v1/models", headers={"Authorization": f"Bearer {key}"})
        assert good.status_code == 200


def test_serve_refuses_an_empty_api_key(lw_home):
    from lwlocal.cli.serving import serve

    result = CliRunner().invoke(serve, ["--api-key", " "])
    assert result.exit_code != 0 and "--api-key is empty" in str(result.exception or result.output)


def test_the_engine_refuses_a_grammar_llama_cpp_cannot_parse(engine):
    with pytest.raises(LwlocalError, match="cannot parse"):
        engine.check_grammar('root ::= root "a"')  # left recursion: llama.cpp gives no sampler
