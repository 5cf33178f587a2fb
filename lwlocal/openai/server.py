"""``lwlocal serve``: an OpenAI-compatible chat server over one local model.

It runs the same engine, sampler chain and prompt format as a local ``lwlocal write``, so a job
written through it comes out as it would locally, and it reports in ``usage`` what the OpenAI
API and vLLM do: prompt tokens, those found in the KV cache
(``prompt_tokens_details.cached_tokens``) and completion tokens, in streams too
(``stream_options.include_usage``; ``continuous_usage_stats`` puts them in every chunk).

One request runs at a time, on the model's own thread; others wait their turn. No client can
stall the rest: bodies are limited in size (413) and nesting, and reading JSON, tokenizing and
building grammars happen in worker threads, so the event loop (and ``/health``) always answers.
A malformed request is a 400, a body that is not JSON by its ``Content-Type`` a 415, a model
other than the one served a 404, each with an OpenAI-style error body (``{"error": {"message",
"type", "param", "code"}}``, which the ``openai`` client turns into its typed exceptions), as is
an error sent inside a stream. A client that goes away, or a streaming client that stops
reading (it leaves ``BACKLOG_LIMIT`` bytes unread for ``stall_seconds``, as TCP's window tells
on Linux, or a send waits ``stall_seconds`` once the connection's buffers are full), has its
generation cancelled; that is normal and logged in one line on the ``lwlocal.serve`` logger.
With an API key, every route but ``/health`` wants ``Authorization: Bearer KEY``.
"""

from __future__ import annotations

import asyncio
import copy
import hmac
import ipaddress
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.types import Message as AsgiMessage

from lwlocal.openai.protocol import FINISH, ChatRequest, decode_body, parse_request
from lwlocal.runtime.chat import Hooks, LocalChat
from lwlocal.runtime.engine import Generation
from lwlocal.util.errors import LwlocalError

log = logging.getLogger("lwlocal.serve")

MAX_BODY = 4 << 20  # bytes; a full 128k-token conversation takes well under 1 MiB of JSON
STALL_SECONDS = 30.0  # how long a streaming client may read nothing before it is given up
SEND_BUFFER = 64 << 10  # bytes of kernel send buffer per connection (Linux doubles it)
CLIENT_GONE = 499  # nginx's "client closed request": the status of answers nobody receives

OnText = Callable[[str, dict[str, Any]], None]
_T = TypeVar("_T")


class BodyTooLarge(LwlocalError):
    """A request body over the server's limit."""


class UnknownModel(LwlocalError):
    """A request for a model this server does not serve."""


class ModelServer:
    """One loaded model behind the OpenAI chat API; requests take turns on it."""

    def __init__(self, chat: LocalChat, name: str, *, api_key: str | None = None,
                 max_body: int = MAX_BODY, stall_seconds: float = STALL_SECONDS) -> None:
        self.chat, self.name = chat, name
        self.api_key, self.max_body, self.stall_seconds = api_key, max_body, stall_seconds
        self.model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lwlocal-model")
        self.created = int(time.time())

    def card(self) -> dict[str, Any]:
        """The model as ``/v1/models`` lists it."""
        return {"id": self.name, "object": "model", "created": self.created,
                "owned_by": "lwlocal", "max_model_len": self.chat.n_ctx}

    def check_model(self, model: str | None) -> None:
        """Refuse a request that names another model (one that names none gets this one)."""
        if model is not None and model != self.name:
            raise UnknownModel(f"the model {model[:200]!r} does not exist on this server "
                               f"(it serves {self.name!r})")

    def prepare(self, raw: bytes) -> ChatRequest:
        """A request body read, checked and measured against the context (CPU-bound: run it in
        a worker thread)."""
        request = parse_request(decode_body(raw))
        self.check_model(request.model)
        if request.grammar is not None:
            self.chat.engine.check_grammar(request.grammar)
        prompt = self.chat.count(request.messages)
        if prompt >= self.chat.n_ctx:
            raise LwlocalError(f"the prompt's {prompt} tokens do not fit the context of "
                               f"{self.chat.n_ctx}")
        return request

    def generate(self, request: ChatRequest, on_text: OnText,
                 cancel: threading.Event) -> tuple[Generation, dict[str, Any]]:
        """Run one request on the model thread, streaming pieces with the usage so far."""
        if cancel.is_set():
            raise LwlocalError("the client went away before its turn")
        stats = self.chat.stats
        before = (stats.prompt_tokens, stats.cached_prompt_tokens)
        produced = 0

        def usage(completion: int) -> dict[str, Any]:
            prompt = stats.prompt_tokens - before[0]
            return {"prompt_tokens": prompt, "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                    "prompt_tokens_details": {"cached_tokens":
                                              stats.cached_prompt_tokens - before[1]}}

        def piece(text: str) -> None:
            nonlocal produced
            produced += 1
            on_text(text, usage(produced))

        result = self.chat.complete(
            request.messages, request.sampling,
            max_tokens=request.max_tokens or self.chat.n_ctx, json_schema=request.json_schema,
            hooks=Hooks(on_text=piece, cancel=cancel,
                        may_end=lambda: produced >= request.min_tokens))
        return result, usage(len(result.tokens))

    # HTTP
    def app(self) -> ASGIApp:
        """The ASGI app (each connection's socket put in its scope, for :class:`ClientBacklog`
        to read)."""
        middleware = [] if self.api_key is None else [Middleware(_KeyCheck, key=self.api_key)]
        return _WithSocket(Starlette(routes=[
            Route("/health", self._health),
            Route("/v1/models", self._models),
            Route("/v1/models/{model:path}", self._model),
            Route("/v1/chat/completions", self._completions, methods=["POST"]),
        ], middleware=middleware, exception_handlers={
            HTTPException: _http_error, Exception: _internal_error}))

    async def _health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def _models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [self.card()]})

    async def _model(self, request: Request) -> Response:
        try:
            self.check_model(request.path_params["model"])
        except UnknownModel as exc:
            return _model_not_found(exc)
        return JSONResponse(self.card())

    async def _body(self, request: Request) -> bytes:
        """The request body, refused as soon as it is known to pass ``max_body``."""
        declared = request.headers.get("content-length", "")
        too_large = BodyTooLarge(f"the request body is over the server's limit of "
                                 f"{self.max_body:,} bytes")
        if declared.isdigit() and int(declared) > self.max_body:
            raise too_large
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)

    async def _completions(self, request: Request) -> Response:
        client = _client(request.scope)
        content_type = request.headers.get("content-type", "")
        if not is_json_type(content_type):
            return _error(415, f"Content-Type {content_type[:100]!r}: the request body must be "
                               "JSON (application/json)")
        try:
            raw = await self._body(request)
        except ClientDisconnect:
            log.info("%s went away while sending its request", client)
            return Response(status_code=CLIENT_GONE)
        except BodyTooLarge as exc:
            return _error(413, str(exc))
        try:
            chat_request = await run_in_threadpool(self.prepare, raw)
        except UnknownModel as exc:
            return _model_not_found(exc)
        except LwlocalError as exc:
            return _error(400, str(exc))
        completion = _Completion(self, chat_request, client, request.scope.get(SOCKET))
        if chat_request.stream:
            return _EventStream(completion)
        return await completion.whole(request.receive)


def is_json_type(content_type: str) -> bool:
    """Whether a ``Content-Type`` names JSON (``application/json``, or a ``+json`` type; its
    parameters aside); a request that gives none is read as JSON, as the API's clients send."""
    media = content_type.partition(";")[0].strip().lower()
    return (not media or media == "application/json"
            or (media.startswith("application/") and media.endswith("+json")))


async def _disconnect(receive: Receive) -> None:
    """Return when the client has gone away (once its body is read, ``receive`` has nothing
    else to give; servers also answer it when the response is complete)."""
    while (await receive())["type"] != "http.disconnect":
        pass


class _Stalled(Exception):
    """A send waited the server's ``stall_seconds``: the client has stopped reading."""


class _Completion:
    """One request's run on the model thread, its pieces handed to the event loop."""

    def __init__(self, server: ModelServer, request: ChatRequest, client: str,
                 sock: socket.socket | None = None) -> None:
        self.server, self.request, self.client = server, request, client
        self.backlog = ClientBacklog(sock)
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.cancel = threading.Event()

    def _run(self, work: Callable[[], _T]) -> asyncio.Future[_T]:
        """``work`` on the model thread, in its turn."""
        return asyncio.get_running_loop().run_in_executor(self.server.model_thread, work)

    def _stop(self, work: asyncio.Future[Any], why: str) -> None:
        """Cancel the generation, or drop it from the queue if its turn has not come."""
        self.cancel.set()
        work.cancel()
        log.info("%s %s: its generation was cancelled", self.client, why)

    def _chunk(self, delta: dict[str, Any], finish: str | None = None,
               usage: dict[str, Any] | None = None, choices: bool = True) -> str:
        payload: dict[str, Any] = {
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.server.name,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if choices else [],
        }
        if usage is not None:
            payload["usage"] = usage
        return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

    async def whole(self, receive: Receive) -> Response:
        """The reply as one JSON response; the generation stops if the client goes away."""
        work = self._run(lambda: self.server.generate(self.request, lambda text, usage: None,
                                                      self.cancel))
        gone = asyncio.ensure_future(_disconnect(receive))
        waiting: list[asyncio.Future[Any]] = [work, gone]
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not work.done():
            self._stop(work, "went away")
            return Response(status_code=CLIENT_GONE)
        try:
            result, usage = work.result()
        except Exception as exc:  # noqa: BLE001 - answered, not a dropped connection
            return _error(*_failure(exc))
        return JSONResponse({
            "id": self.id, "object": "chat.completion", "created": self.created,
            "model": self.server.name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text},
                         "finish_reason": FINISH[result.stop]}],
            "usage": usage,
        })

    async def stream(self, receive: Receive, send: Send, headers: list[tuple[bytes, bytes]]
                     ) -> None:
        """The reply as server-sent events; the generation stops if the client goes away or
        reads nothing for the server's ``stall_seconds``."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

        def on_text(text: str, usage: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(events.put_nowait, ("text", (text, usage)))

        def generate() -> None:
            outcome: tuple[str, Any]
            try:
                outcome = ("done", self.server.generate(self.request, on_text, self.cancel))
            except Exception as exc:  # noqa: BLE001 - every failure must end the stream
                outcome = ("error", _failure(exc))
            loop.call_soon_threadsafe(events.put_nowait, outcome)

        work = self._run(generate)
        sending = asyncio.ensure_future(self._send_events(send, headers, events))
        gone = asyncio.ensure_future(_disconnect(receive))
        unread = asyncio.ensure_future(self.backlog.stalled(self.server.stall_seconds))
        try:
            await asyncio.wait({sending, gone, unread}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            unread.cancel()
        if not sending.done():
            sending.cancel()
            self._stop(work, f"read nothing for {self.server.stall_seconds:g} s"
                       if unread.done() and not unread.cancelled() else "went away")
        elif isinstance(sending.exception(), _Stalled):
            self._stop(work, f"read nothing for {self.server.stall_seconds:g} s")
        elif sending.exception() is not None:
            self._stop(work, f"could not be sent to ({sending.exception()})")

    async def _send_events(self, send: Send, headers: list[tuple[bytes, bytes]],
                           events: asyncio.Queue[tuple[str, Any]]) -> None:
        """Send each event as it comes; ``_Stalled`` if a send cannot be made in time."""
        async def emit(message: AsgiMessage) -> None:
            try:
                await asyncio.wait_for(send(message), self.server.stall_seconds)
            except asyncio.TimeoutError as exc:
                raise _Stalled from exc

        async def event(data: str) -> None:
            await emit({"type": "http.response.body", "body": data.encode(), "more_body": True})

        await emit({"type": "http.response.start", "status": 200, "headers": headers})
        await event(self._chunk({"role": "assistant", "content": ""}))
        continuous = self.request.continuous_usage
        while True:
            kind, value = await events.get()
            if kind == "text":
                text, usage = value
                await event(self._chunk({"content": text}, usage=usage if continuous else None))
            elif kind == "error":
                await event(f"data: {json.dumps(_error_body(*value))}\n\n")
                break
            else:
                result, usage = value
                await event(self._chunk({}, FINISH[result.stop],
                                        usage=usage if continuous else None))
                if self.request.include_usage:
                    await event(self._chunk({}, usage=usage, choices=False))
                await event("data: [DONE]\n\n")
                break
        await emit({"type": "http.response.body", "body": b"", "more_body": False})


SOCKET = "lwlocal.socket"  # the scope key of the connection's socket
TCP_INFO_SND_WND = 228  # offsets in Linux's struct tcp_info: the peer's advertised window
TCP_INFO_NOTSENT = 144  # ... and the bytes not sent yet
BACKLOG_LIMIT = 64 << 10  # bytes a streaming client may leave unread before its clock runs
BACKLOG_POLLS = 10  # looks at the connection per stall_seconds


class ClientBacklog:
    """What a streaming client has been sent and not read, as TCP sees it (Linux): how far the
    receive window it advertises has shrunk from the widest it has been, plus what waits to
    be sent. A client that reads keeps its window open; one that does not shrinks it by every
    byte sent, however large its receive buffer (on loopback it grows to megabytes, which
    would otherwise take minutes of generation to fill before a send waited)."""

    def __init__(self, sock: socket.socket | None) -> None:
        self.sock, self.widest = sock, 0

    def unread(self) -> int | None:
        """Bytes sent and not read, or None where TCP does not tell."""
        if self.sock is None or not hasattr(socket, "TCP_INFO"):
            return None
        try:
            info = self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO,
                                        TCP_INFO_SND_WND + 4)
        except OSError:
            return None
        if len(info) < TCP_INFO_SND_WND + 4:  # a kernel older than 5.4
            return None
        window = int.from_bytes(info[TCP_INFO_SND_WND:TCP_INFO_SND_WND + 4], "little")
        pending = int.from_bytes(info[TCP_INFO_NOTSENT:TCP_INFO_NOTSENT + 4], "little")
        self.widest = max(self.widest, window)
        return self.widest - window + pending

    async def stalled(self, seconds: float) -> None:
        """Return once the client has left over ``BACKLOG_LIMIT`` bytes unread, reading none
        of them, for ``seconds``; never where TCP does not tell."""
        loop = asyncio.get_running_loop()
        since: float | None = None
        before = self.unread()
        if before is None:
            await asyncio.Event().wait()
        while True:
            await asyncio.sleep(seconds / BACKLOG_POLLS)
            now = self.unread()
            if now is None or before is None or now < before or now < BACKLOG_LIMIT:
                since = None  # it read something, or has little left to read
            else:
                since = since or loop.time()
            if since is not None and loop.time() - since >= seconds:
                return
            before = now


class _WithSocket:
    """ASGI middleware: each HTTP connection's socket in ``scope[SOCKET]`` where the server
    has one (uvicorn's ``send`` is a method of the connection's cycle, which holds its
    transport); absent elsewhere (an in-process client)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        transport = getattr(getattr(send, "__self__", None), "transport", None)
        if scope["type"] == "http" and transport is not None:
            scope = {**scope, SOCKET: transport.get_extra_info("socket")}
        await self.app(scope, receive, send)


class _EventStream(Response):
    """A completion streamed as server-sent events."""

    media_type = "text/event-stream"

    def __init__(self, completion: _Completion) -> None:
        self.completion, self.status_code, self.background = completion, 200, None
        self.init_headers()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.completion.stream(receive, send, self.raw_headers)


class _KeyCheck:
    """ASGI middleware: every route but ``/health`` wants ``Authorization: Bearer KEY``,
    compared in constant time."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app, self.key = app, key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] != "/health":
            given = dict(scope["headers"]).get(b"authorization", b"")
            scheme, _, token = given.partition(b" ")
            valid = hmac.compare_digest(token.strip(), self.key)  # before the scheme: no shortcut
            if not (valid and scheme.lower() == b"bearer"):
                response = _error(401, "a valid API key is needed (Authorization: Bearer KEY)",
                                  code="invalid_api_key")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _client(scope: Scope) -> str:
    """The client's address, for log lines."""
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "a client"


def _error_body(status: int, message: str, kind: str = "invalid_request_error",
                code: str | None = None, param: str | None = None) -> dict[str, Any]:
    """An OpenAI-style error: ``code`` is OpenAI's word for it where it has one, else the
    status (as llama-server and vLLM send it)."""
    return {"error": {"message": message, "type": kind, "param": param,
                      "code": status if code is None else code}}


def _error(status: int, message: str, kind: str = "invalid_request_error",
           code: str | None = None, param: str | None = None) -> JSONResponse:
    """An OpenAI-style error answer."""
    return JSONResponse(_error_body(status, message, kind, code, param), status_code=status)


def _model_not_found(exc: UnknownModel) -> JSONResponse:
    return _error(404, str(exc), code="model_not_found", param="model")


def _failure(exc: Exception) -> tuple[int, str, str]:
    """A generation's failure as a status, message and error type: the request's fault (a
    :class:`LwlocalError`) or the server's."""
    if isinstance(exc, LwlocalError):
        return 400, str(exc), "invalid_request_error"
    return 500, str(exc) or type(exc).__name__, "server_error"


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(exc.status_code, exc.detail)


async def _internal_error(request: Request, exc: Exception) -> Response:
    return _error(500, "the server failed on this request (see its log)", "server_error")


class _CutOffNote(logging.Filter):
    """Drops uvicorn's error line on a response left incomplete: the only ones this app leaves
    are to clients cut off for not reading, which ``lwlocal.serve`` has noted already."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "ASGI callable returned without completing response."


def log_config() -> dict[str, Any]:
    """uvicorn's logging, with this server's one-line notes (``lwlocal.serve``) shown beside
    its warnings."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["cut_off"] = {"()": _CutOffNote}
    config["loggers"]["uvicorn.error"]["filters"] = ["cut_off"]
    config["loggers"][log.name] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """The socket to serve on, bound before the model loads (a one-line error where the address
    cannot be served). Its send buffer is fixed at ``SEND_BUFFER`` (connections inherit it), so
    that a streaming client that stops reading fills it soon and is cut off ``stall_seconds``
    later, rather than the kernel taking megabytes of a reply nobody reads (on loopback it
    would grow to 4 MiB)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise LwlocalError(f"{host}:{port}: cannot serve there ({exc.strerror})") from exc
    return sock
