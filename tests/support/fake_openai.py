"""A loopback OpenAI-compatible server that misbehaves on cue: each chat request takes the next
behaviour of a script (``503``, ``malformed``, ``truncated``, ``ok``), the last one repeating."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REPLY = "The harbour wakes early. Boats leave before dawn and come back with the tide."


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, script: list[str]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script = list(script)
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

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._send(200, json.dumps({"object": "list", "data": [
            {"id": "fake", "object": "model", "max_model_len": 4096}]}).encode())

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(body)
        behaviour = self.server.next_behaviour()
        if behaviour == "503":
            self._send(503, b'{"error": {"message": "loading model"}}')
            return
        words = REPLY.split(" ")
        chunks = [json.dumps({"choices": [{"index": 0, "delta": {"content": w + " "},
                                           "finish_reason": None}]}) for w in words]
        if behaviour == "malformed":
            chunks.insert(3, '{"choices": [{"delta": ')
        if behaviour == "truncated":
            chunks = chunks[:4]
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
def fake_server(script: list[str]) -> Iterator[FakeServer]:
    server = FakeServer(script)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
