"""A loopback OpenAI-compatible server that misbehaves on cue: each chat request takes the next
behaviour of a script, the last one repeating:

- ``ok``: the reply streamed whole, with usage;
- ``503`` (or any status), optionally ``503 retry-after=7`` (seconds) or
  ``429 retry-after=date+100`` (an HTTP date that many seconds ahead): an error answer;
- ``malformed``, ``truncated``: a broken stream;
- ``error:NAME``: a few words, then an error event in the stream, shaped as the server NAME
  sends it (``STREAM_ERRORS``: llama.cpp's ``llama-server`` and vLLM, refusing the request or
  failing on their side).

``models`` are the names ``/v1/models`` lists (the first with a ``max_model_len`` and
``aliases``, and with ``owner`` its ``owned_by``: ``llamacpp`` makes a server that goes on
with replies)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REPLY = "The harbour wakes early. Boats leave before dawn and come back with the tide."
# In-stream errors as each server sends them (llama.cpp: format_error_response in
# tools/server/server-common.cpp, its request-size check in server-context.cpp; vLLM:
# OpenAIServing.create_streaming_error_response)
STREAM_ERRORS = {
    "llama-context": {"code": 400, "message": "request (5000 tokens) exceeds the available "
                      "context size (4096 tokens), try increasing it",
                      "type": "exceed_context_size_error", "n_prompt_tokens": 5000,
                      "n_ctx": 4096},
    "llama-shift": {"code": 500, "message": "context shift is disabled", "type": "server_error"},
    "llama-server": {"code": 500, "message": "got exception: out of memory",
                     "type": "server_error"},
    "vllm-context": {"message": "This model's maximum context length is 4096 tokens. However, "
                     "you requested 5000 tokens. Please reduce the length of the messages.",
                     "type": "BadRequestError", "param": None, "code": 400},
    "vllm-server": {"message": "Internal server error", "type": "InternalServerError",
                    "param": None, "code": 500},
}


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, script: list[str], models: tuple[str, ...] = ("fake",),
                 owner: str | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script = list(script)
        self.models = models
        self.owner = owner
        self.aliases: list[str] = []  # the first model's, as llama-server lists its --alias
        self.requests: list[dict] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def next_behaviour(self) -> str:
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]


class _Handler(BaseHTTPRequestHandler):
    server: FakeServer

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._send(200, json.dumps({"object": "list", "data": [
            {"id": name, "object": "model",
             **({"max_model_len": 4096, "aliases": self.server.aliases} if n == 0 else {}),
             **({"owned_by": self.server.owner} if n == 0 and self.server.owner else {})}
            for n, name in enumerate(self.server.models)]}).encode())

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(body)
        behaviour, *options = self.server.next_behaviour().split()
        if behaviour.isdigit():
            headers = {}
            for option in options:
                name, _, value = option.partition("=")
                if value.startswith("date+"):
                    value = formatdate(time.time() + float(value[5:]), usegmt=True)
                headers[name.title()] = value
            self._send(int(behaviour), b'{"error": {"message": "loading model"}}',
                       headers=headers)
            return
        words = REPLY.split(" ")
        chunks = [json.dumps({"choices": [{"index": 0, "delta": {"content": w + " "},
                                           "finish_reason": None}]}) for w in words]
        if behaviour == "malformed":
            chunks.insert(3, '{"choices": [{"delta": ')
        if behaviour == "truncated":
            chunks = chunks[:4]
        elif behaviour.startswith("error:"):
            chunks = [*chunks[:3], json.dumps({"error": STREAM_ERRORS[behaviour[6:]]})]
        else:
            chunks += [json.dumps({"choices": [{"index": 0, "delta": {},
                                                "finish_reason": "stop"}]}),
                       json.dumps({"choices": [], "usage": {
                           "prompt_tokens": 50, "completion_tokens": len(words),
                           "total_tokens": 50 + len(words),
                           "prompt_tokens_details": {"cached_tokens": 20}}}),
                       "[DONE]"]
        stream = "".join(f"data: {c}\n\n" for c in chunks).encode()
        self._send(200, stream, "text/event-stream")


@contextmanager
def fake_server(script: list[str], models: tuple[str, ...] = ("fake",),
                owner: str | None = None) -> Iterator[FakeServer]:
    server = FakeServer(script, models, owner)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
