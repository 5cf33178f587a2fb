"""``lwlocal serve``: an OpenAI-compatible chat server over one local model.

It runs the same engine, sampler chain and prompt format as a local ``lwlocal write``, so a job
written through it comes out as it would locally, and it reports in ``usage`` what the OpenAI
API and vLLM do: prompt tokens, those found in the KV cache
(``prompt_tokens_details.cached_tokens``) and completion tokens, in streams too
(``stream_options.include_usage``; ``continuous_usage_stats`` puts them in every chunk).
One request runs at a time; others wait their turn.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from lwlocal.openai.protocol import FINISH, ChatRequest, parse_request
from lwlocal.runtime.chat import Hooks, LocalChat
from lwlocal.runtime.engine import Generation
from lwlocal.util.errors import LwlocalError


class ModelServer:
    """One loaded model behind the OpenAI chat API; requests take turns on it."""

    def __init__(self, chat: LocalChat, name: str) -> None:
        self.chat, self.name = chat, name
        self._lock = threading.Lock()

    def generate(self, request: ChatRequest, on_text: Callable[[str, dict[str, Any]], None],
                 cancel: threading.Event) -> tuple[Generation, dict[str, Any]]:
        """Run one request (waiting for the model), streaming pieces with the usage so far."""
        with self._lock:
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
    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/health", self._health),
            Route("/v1/models", self._models),
            Route("/v1/chat/completions", self._completions, methods=["POST"]),
        ])

    async def _health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def _models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{
            "id": self.name, "object": "model", "owned_by": "lwlocal",
            "max_model_len": self.chat.n_ctx}]})

    async def _completions(self, request: Request) -> Response:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            return _error(400, "the request body is not JSON")
        try:
            chat_request = parse_request(body)
        except LwlocalError as exc:
            return _error(400, str(exc))
        prompt = self.chat.count(chat_request.messages)
        if prompt >= self.chat.n_ctx:
            return _error(400, f"the prompt's {prompt} tokens do not fit the context of "
                               f"{self.chat.n_ctx}")
        completion = _Completion(self, chat_request)
        if chat_request.stream:
            return StreamingResponse(completion.events(), media_type="text/event-stream")
        return await completion.whole()


class _Completion:
    """One request's run in a worker thread, its pieces handed to the event loop."""

    def __init__(self, server: ModelServer, request: ChatRequest) -> None:
        self.server, self.request = server, request
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.cancel = threading.Event()

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

    async def events(self) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

        def on_text(text: str, usage: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, ("text", (text, usage)))

        def work() -> None:
            outcome: tuple[str, Any]
            try:
                outcome = ("done", self.server.generate(self.request, on_text, self.cancel))
            except Exception as exc:  # noqa: BLE001 - every failure must end the stream
                outcome = ("error", str(exc) or type(exc).__name__)
            loop.call_soon_threadsafe(queue.put_nowait, outcome)

        worker = loop.run_in_executor(None, work)
        continuous = self.request.continuous_usage
        try:
            yield self._chunk({"role": "assistant", "content": ""})
            while True:
                kind, value = await queue.get()
                if kind == "text":
                    text, usage = value
                    yield self._chunk({"content": text}, usage=usage if continuous else None)
                elif kind == "error":
                    yield f"data: {json.dumps({'error': {'message': value}})}\n\n"
                    break
                else:
                    result, usage = value
                    yield self._chunk({}, FINISH[result.stop],
                                      usage=usage if continuous else None)
                    if self.request.include_usage:
                        yield self._chunk({}, usage=usage, choices=False)
                    yield "data: [DONE]\n\n"
                    break
        finally:
            self.cancel.set()  # the client went away: stop generating
            worker.cancel()  # dropped if it is still waiting for the model

    async def whole(self) -> Response:
        try:
            result, usage = await asyncio.get_running_loop().run_in_executor(
                None, self.server.generate, self.request, lambda text, usage: None,
                self.cancel)
        except LwlocalError as exc:
            return _error(400, str(exc))
        except Exception as exc:  # noqa: BLE001 - answered, not a dropped connection
            return _error(500, str(exc) or type(exc).__name__)
        return JSONResponse({
            "id": self.id, "object": "chat.completion", "created": self.created,
            "model": self.server.name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text},
                         "finish_reason": FINISH[result.stop]}],
            "usage": usage,
        })


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "invalid_request_error",
                                   "code": status}}, status_code=status)


def check_port(host: str, port: int) -> None:
    """Fail in one line, before the model loads, when the address cannot be served."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise LwlocalError(f"{host}:{port}: cannot serve there ({exc.strerror})") from exc
