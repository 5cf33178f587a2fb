"""One chat completion's reply: the request run on the model thread in its turn, answered as one
JSON response or streamed as server-sent events, and cancelled when its client goes away or
stops reading."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from starlette.responses import JSONResponse, Response
from starlette.types import Message as AsgiMessage
from starlette.types import Receive, Scope, Send

from lwlocal.openai.errors import error_body, error_response, failure
from lwlocal.openai.listen import log
from lwlocal.openai.protocol import FINISH, ChatRequest
from lwlocal.openai.tcp_backlog import ClientBacklog

if TYPE_CHECKING:
    from lwlocal.openai.server import ModelServer

CLIENT_GONE = 499  # nginx's "client closed request": the status of answers nobody receives

_T = TypeVar("_T")


async def _disconnect(receive: Receive) -> None:
    """Return when the client has gone away (once its body is read, ``receive`` has nothing
    else to give; servers also answer it when the response is complete)."""
    while (await receive())["type"] != "http.disconnect":
        pass


class _Stalled(Exception):
    """A send waited the server's ``stall_seconds``: the client has stopped reading."""


class Completion:
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
            return error_response(*failure(exc))
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
                outcome = ("error", failure(exc))
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
                await event(f"data: {json.dumps(error_body(*value))}\n\n")
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


class EventStream(Response):
    """A completion streamed as server-sent events."""

    media_type = "text/event-stream"

    def __init__(self, completion: Completion) -> None:
        self.completion, self.status_code, self.background = completion, 200, None
        self.init_headers()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.completion.stream(receive, send, self.raw_headers)
