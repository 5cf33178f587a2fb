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

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Scope

from lwlocal.openai.completion import CLIENT_GONE, Completion, EventStream
from lwlocal.openai.errors import (
    BodyTooLarge,
    UnknownModel,
    error_response,
    http_error,
    internal_error,
    model_not_found,
)
from lwlocal.openai.listen import log
from lwlocal.openai.middleware import SOCKET, KeyCheck, WithSocket
from lwlocal.openai.protocol import ChatRequest, decode_body, parse_request
from lwlocal.runtime.chat import Hooks, LocalChat
from lwlocal.runtime.engine import Generation
from lwlocal.util.errors import LwlocalError

MAX_BODY = 4 << 20  # bytes; a full 128k-token conversation takes well under 1 MiB of JSON
STALL_SECONDS = 30.0  # how long a streaming client may read nothing before it is given up

OnText = Callable[[str, dict[str, Any]], None]


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

        hooks = Hooks(on_text=piece, cancel=cancel, may_end=lambda: not request.ignore_eos
                      and produced >= request.min_tokens)
        max_tokens = request.max_tokens or self.chat.n_ctx
        if request.reply_start is None:
            result = self.chat.complete(request.messages, request.sampling,
                                        max_tokens=max_tokens,
                                        json_schema=request.json_schema, hooks=hooks)
        else:
            result = self.chat.continue_reply(request.messages, request.reply_start,
                                              request.sampling, max_tokens=max_tokens,
                                              hooks=hooks)
        return result, usage(len(result.tokens))

    # HTTP
    def app(self) -> ASGIApp:
        """The ASGI app (each connection's socket put in its scope, for :class:`ClientBacklog`
        to read)."""
        middleware = [] if self.api_key is None else [Middleware(KeyCheck, key=self.api_key)]
        return WithSocket(Starlette(routes=[
            Route("/health", self._health),
            Route("/v1/models", self._models),
            Route("/v1/models/{model:path}", self._model),
            Route("/v1/chat/completions", self._completions, methods=["POST"]),
        ], middleware=middleware, exception_handlers={
            HTTPException: http_error, Exception: internal_error}))

    async def _health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def _models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [self.card()]})

    async def _model(self, request: Request) -> Response:
        try:
            self.check_model(request.path_params["model"])
        except UnknownModel as exc:
            return model_not_found(exc)
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
            return error_response(415, f"Content-Type {content_type[:100]!r}: the request body "
                                       "must be JSON (application/json)")
        try:
            raw = await self._body(request)
        except ClientDisconnect:
            log.info("%s went away while sending its request", client)
            return Response(status_code=CLIENT_GONE)
        except BodyTooLarge as exc:
            return error_response(413, str(exc))
        try:
            chat_request = await run_in_threadpool(self.prepare, raw)
        except UnknownModel as exc:
            return model_not_found(exc)
        except LwlocalError as exc:
            return error_response(400, str(exc))
        completion = Completion(self, chat_request, client, request.scope.get(SOCKET))
        if chat_request.stream:
            return EventStream(completion)
        return await completion.whole(request.receive)


def is_json_type(content_type: str) -> bool:
    """Whether a ``Content-Type`` names JSON (``application/json``, or a ``+json`` type; its
    parameters aside); a request that gives none is read as JSON, as the API's clients send."""
    media = content_type.partition(";")[0].strip().lower()
    return (not media or media == "application/json"
            or (media.startswith("application/") and media.endswith("+json")))


def _client(scope: Scope) -> str:
    """The client's address, for log lines."""
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "a client"
