"""A conversation backend over an OpenAI-compatible server: llama.cpp's ``llama-server``, vLLM,
Ollama, ``lwlocal serve``.

Requests are streaming chat completions carrying the whole conversation, whose earlier turns
never change, so the server's prompt cache (llama.cpp ``cache_prompt``, vLLM automatic prefix
caching) reuses their KV. Token counts come from the server's ``usage``, or from llama-server's
per-token ``timings`` when a reply is cut short before its usage arrives. Connection errors,
timeouts, 429 and 5xx answers, malformed or truncated streams and errors a server reports
mid-stream on its own side are retried with exponential backoff and jitter (or after the
``Retry-After`` the server asks for), each retry reported as a :class:`Retry`; then the
request fails with one line naming the server and the problem. An error the server blames on
the request (a prompt over its context, an unknown model) fails at once: it would recur.
"""

from __future__ import annotations

import datetime
import json
import os
import random
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from lwlocal.runtime.chat import NO_HOOKS, Hooks, Message, check_turns
from lwlocal.runtime.engine import Generation, Sampling, Stats
from lwlocal.util.errors import LwlocalError, SettingError

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
BACKOFF_CAP = 30.0  # seconds: the longest wait between two tries
RETRY_AFTER_CAP = 120.0  # seconds: the longest wait a server's Retry-After gets
# What a server sends inside a stream when the request itself is at fault, so that sending it
# again would fail again: error types (OpenAI and llama-server's snake_case names, vLLM's
# exception names), codes (HTTP statuses, or OpenAI's words) and, for servers that call it a
# server error, the message (llama-server: "context shift is disabled" once a reply reaches the
# end of the context).
REQUEST_ERROR_TYPES = frozenset({
    "invalid_request_error", "exceed_context_size_error", "not_found_error",
    "authentication_error", "permission_error", "not_supported_error",  # OpenAI, llama-server
    "BadRequestError", "NotFoundError", "NotImplementedError",  # vLLM
})
REQUEST_ERROR_CODES = frozenset({"400", "401", "403", "404", "413", "422", "501",
                                 "context_length_exceeded", "model_not_found",
                                 "invalid_api_key"})
REQUEST_ERROR_MESSAGE = re.compile(r"context (length|size|window)|context shift is disabled",
                                   re.IGNORECASE)
BYTES_PER_TOKEN = 3  # for estimating a conversation's tokens: fewer than any tokenizer averages
TOKENS_PER_MESSAGE = 8  # the chat template's markers around each turn, estimated
FINISH_REASONS = {"stop": "eog", "length": "length"}
API_KEY_VARIABLES = ("LWLOCAL_API_KEY", "OPENAI_API_KEY")


@dataclass(frozen=True)
class Server:
    """Where and how to reach a server.

    ``model`` is the server's name for the model (None: the first it lists); ``n_ctx`` its
    context size (None: as the server reports it in ``max_model_len``, else unknown).
    ``timeout`` is the seconds to wait for the next byte; ``retries`` the tries after the first,
    ``backoff`` the first wait in seconds, doubled after each failure (up to 30 s) and jittered.
    ``slot`` is the server slot this client keeps to (llama-server's ``id_slot``), so that a
    job's turns find its prefix in that slot's KV cache whatever other clients send; it is used
    when the server reports at least that many slots, and ignored by other servers.
    ``on_retry`` hears of each failed try that will be made again (the command line prints it).
    """

    base_url: str
    api_key: str | None = None
    model: str | None = None
    n_ctx: int | None = None
    timeout: float = 600.0
    retries: int = 6
    backoff: float = 1.0
    slot: int | None = None
    on_retry: Callable[[Retry], None] | None = field(default=None, compare=False, repr=False)

    @property
    def url(self) -> str:
        """The API root, ``/v1`` added when the URL names no path."""
        url = self.base_url.rstrip("/")
        return url if httpx.URL(url).path not in ("", "/") else f"{url}/v1"

    @property
    def root(self) -> str:
        """The server's own root, where llama-server answers ``/props`` and ``/slots``."""
        url = self.url
        return url[: -len("/v1")] if url.endswith("/v1") else url

    def check(self) -> None:
        """Refuse an address that is not http(s)://host, in one line."""
        try:
            parsed = httpx.URL(self.base_url)
        except httpx.InvalidURL as exc:
            raise SettingError(f"{{base_url}} {self.base_url}: not a URL ({exc})") from exc
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise SettingError(f"{{base_url}} {self.base_url}: give http(s)://host:port/v1")

    def key(self) -> str | None:
        """The API key given, or from $LWLOCAL_API_KEY / $OPENAI_API_KEY (never stored)."""
        return self.api_key or next(
            (os.environ[v] for v in API_KEY_VARIABLES if os.environ.get(v)), None)


class Retryable(Exception):
    """A failure worth another try (the server may be restarting or overloaded); ``wait`` is
    the seconds the server asked to wait (``Retry-After``), if it did."""

    def __init__(self, problem: str, wait: float | None = None) -> None:
        super().__init__(problem)
        self.wait = wait


@dataclass(frozen=True)
class Retry:
    """A failed try that will be made again: the one place its report is worded."""

    url: str
    attempt: int  # the try that failed, from 1
    tries: int  # all the tries there will be
    problem: str
    wait: float  # seconds until the next
    asked: bool  # the wait is the server's Retry-After

    def __str__(self) -> str:
        why = ", as the server asked (Retry-After)" if self.asked else ""
        return (f"{self.url}: try {self.attempt} of {self.tries} failed ({self.problem}); "
                f"trying again in {self.wait:.1f} s{why}")


@dataclass
class _Reply:
    pieces: list[str]
    stop: str | None = None
    usage: dict[str, Any] | None = None
    timings: dict[str, Any] | None = None  # llama-server's, with each token
    chunks: int = 0
    first_token_at: float | None = None


class OpenAIChat:
    """Streaming chat completions against one server, as a writer's backend."""

    def __init__(self, server: Server, *, sleep: Callable[[float], None] = time.sleep) -> None:
        server.check()
        self.server = server
        self.stats = Stats()
        self._sleep = sleep
        key = server.key()
        self._client = httpx.Client(
            base_url=server.url + "/",
            headers={"Authorization": f"Bearer {key}"} if key else {},
            timeout=httpx.Timeout(server.timeout, connect=min(server.timeout, 10.0)),
        )
        listed = self._retrying(self._list_models)
        self.model = self._choose_model(listed)
        card: dict[str, Any] = next((m for m in listed if m.get("id") == self.model), {})
        self._n_ctx = server.n_ctx or card.get("max_model_len")
        self.slot = self._sticky_slot()

    def close(self) -> None:
        self._client.close()

    @property
    def n_ctx(self) -> int | None:
        return self._n_ctx

    def count(self, messages: Sequence[Message]) -> int:
        """An estimate on the high side: the server's tokenizer is not at hand."""
        return sum(len(m.content.encode()) // BYTES_PER_TOKEN + TOKENS_PER_MESSAGE
                   for m in messages)

    def _choose_model(self, listed: list[dict[str, Any]]) -> str:
        """The model to ask for: ``server.model`` if the server lists it (by one of its
        ``aliases`` too, as llama-server lists them; Ollama's names also without their
        ``:latest``; a server that lists nothing is taken at its word), else the first
        listed."""
        url, wanted = self.server.url, self.server.model
        names = [str(m["id"]) for m in listed if m.get("id")]
        if wanted is None:
            if not names:
                raise SettingError(f"{url}: the server lists no model; give {{server_model}}")
            return names[0]
        if not names:
            return wanted
        for card in listed:
            aliases = card.get("aliases")
            known = [card.get("id"), *(aliases if isinstance(aliases, list) else [])]
            if wanted in known or f"{wanted}:latest" in known:
                return str(card.get("id"))
        raise SettingError(f"{url}: no model {wanted!r} on this server (it lists: "
                           f"{', '.join(names)}); check {{server_model}}")

    # requests
    def _retrying(self, attempt: Callable[[], Any], on_retry: Callable[[], None] | None = None
                  ) -> Any:
        server = self.server
        for tried in range(server.retries + 1):
            try:
                return attempt()
            except Retryable as exc:
                if tried == server.retries:
                    raise LwlocalError(f"{server.url}: {exc} (gave up after {tried + 1} "
                                       "tries)") from exc
                if on_retry is not None:
                    on_retry()
                if exc.wait is not None:
                    wait = min(RETRY_AFTER_CAP, exc.wait)
                else:
                    wait = min(BACKOFF_CAP, server.backoff * 2**tried) * random.uniform(0.5, 1)
                if server.on_retry is not None:
                    server.on_retry(Retry(server.url, tried + 1, server.retries + 1, str(exc),
                                          wait, exc.wait is not None))
                self._sleep(wait)
        raise AssertionError("unreachable")

    def _list_models(self) -> list[dict[str, Any]]:
        try:
            response = self._client.get("models")
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise LwlocalError(f"{self.server.url}: not an http(s) address ({exc})") from exc
        except httpx.TransportError as exc:
            raise Retryable(_transport_problem(exc)) from exc
        _check_status(response, self.server.url)
        try:
            return list(response.json().get("data") or [])
        except (ValueError, AttributeError) as exc:
            raise LwlocalError(f"{self.server.url}/models: not an OpenAI model list") from exc

    def _sticky_slot(self) -> int | None:
        """``server.slot`` if the server has that slot (llama-server's ``/props`` gives
        ``total_slots``); None for servers that route requests themselves."""
        wanted = self.server.slot
        if wanted is None:
            return None
        try:
            response = self._client.get(self.server.root + "/props")
            total = response.json().get("total_slots") if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError):
            return None
        return wanted if isinstance(total, int) and wanted < total else None

    def _body(self, messages: Sequence[Message], sampling: Sampling, max_tokens: int,
              json_schema: dict[str, Any] | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "stream": True,
            "stream_options": {"include_usage": True, "continuous_usage_stats": True},
            "max_tokens": max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "top_k": sampling.top_k,
            "min_p": sampling.min_p,
            "repeat_penalty": sampling.repeat_penalty,  # llama.cpp's name
            "repetition_penalty": sampling.repeat_penalty,  # vLLM's name
            "seed": sampling.seed,
            # llama.cpp's DRY (vLLM and others ignore these fields)
            "dry_multiplier": sampling.dry_multiplier,
            "dry_base": sampling.dry_base,
            "dry_allowed_length": sampling.dry_allowed_length,
            "dry_penalty_last_n": sampling.dry_penalty_last_n,
            "cache_prompt": True,
            "timings_per_token": True,  # llama-server's counts, for a reply cut short
        }
        if self.slot is not None:
            body["id_slot"] = self.slot
        if json_schema is not None:
            body["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "reply", "schema": json_schema, "strict": True}}
        return body

    def complete(self, messages: Sequence[Message], sampling: Sampling, *, max_tokens: int,
                 json_schema: dict[str, Any] | None = None, hooks: Hooks = NO_HOOKS
                 ) -> Generation:
        """As :meth:`ChatBackend.complete`; ``hooks.may_end`` cannot be asked over the API, so
        ``hooks.min_tokens`` goes as ``min_tokens`` (servers without it ignore it)."""
        check_turns(messages)
        if self.n_ctx is not None:  # vLLM refuses prompt + max_tokens beyond its context
            max_tokens = max(1, min(max_tokens, self.n_ctx - self.count(messages)))
        body = self._body(messages, sampling, max_tokens, json_schema)
        if hooks.min_tokens:
            body["min_tokens"] = min(hooks.min_tokens, max_tokens)
        started = time.perf_counter()
        reply: _Reply = self._retrying(lambda: self._stream(body, hooks), hooks.on_retry)
        self._account(reply, messages, started)
        return Generation(text="".join(reply.pieces), stop=reply.stop or "length")

    def _stream(self, body: dict[str, Any], hooks: Hooks) -> _Reply:
        reply = _Reply(pieces=[])
        finished = False
        try:
            with self._client.stream("POST", "chat/completions", json=body) as response:
                if response.status_code >= 400:
                    response.read()
                _check_status(response, self.server.url)
                for chunk in _events(response, self.server.url):
                    if chunk is None:  # [DONE]
                        finished = True
                        break
                    reply.usage = chunk.get("usage") or reply.usage
                    reply.timings = chunk.get("timings") or reply.timings
                    for choice in chunk.get("choices") or []:
                        piece = (choice.get("delta") or {}).get("content") or ""
                        if piece:
                            reply.first_token_at = reply.first_token_at or time.perf_counter()
                            reply.pieces.append(piece)
                            reply.chunks += 1
                            if hooks.on_text is not None:
                                hooks.on_text(piece)
                        if choice.get("finish_reason"):
                            reply.stop = FINISH_REASONS.get(choice["finish_reason"], "eog")
                    if reply.stop is None and hooks.should_stop is not None and reply.pieces \
                            and hooks.should_stop():
                        reply.stop = "stopped"
                    if reply.stop is None and hooks.cancel is not None and hooks.cancel.is_set():
                        reply.stop = "cancelled"
                    if reply.stop in ("stopped", "cancelled"):
                        return reply  # closing the stream tells the server to stop
        except httpx.TransportError as exc:
            raise Retryable(_transport_problem(exc)) from exc
        if not finished and reply.stop is None:
            raise Retryable("the stream ended before the reply did (truncated)")
        return reply

    def _account(self, reply: _Reply, messages: Sequence[Message], started: float) -> None:
        """Add one request to the stats, from the server's usage (estimated without one)."""
        usage = reply.usage or _usage_from_timings(reply.timings) or {}
        prompt = int(usage.get("prompt_tokens") or self.count(messages))
        cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
        generated = int(usage.get("completion_tokens") or reply.chunks)
        if reply.stop == "stopped":  # the last usage seen was one chunk behind at most
            generated = max(generated, reply.chunks)
        now = time.perf_counter()
        first = reply.first_token_at or now
        stats = self.stats
        stats.requests += 1
        stats.prompt_tokens += prompt
        stats.cached_prompt_tokens += cached
        stats.prompt_tokens_evaluated += prompt - cached
        stats.generated_tokens += generated
        stats.prefill_seconds += first - started
        stats.decode_seconds += now - first
        stats.context_tokens = prompt + generated


def _usage_from_timings(timings: dict[str, Any] | None) -> dict[str, Any] | None:
    """llama-server's ``timings`` (prompt tokens found cached, evaluated, generated) as usage."""
    if not timings or "cache_n" not in timings or "prompt_n" not in timings:
        return None
    cached = int(timings["cache_n"])
    return {"prompt_tokens": cached + int(timings["prompt_n"]),
            "prompt_tokens_details": {"cached_tokens": cached},
            "completion_tokens": int(timings.get("predicted_n") or 0)}


def _events(response: httpx.Response, url: str) -> Iterator[dict[str, Any] | None]:
    """The JSON objects of a server-sent event stream; None for ``[DONE]``. An error event is
    retried if the server failed on its side, an error at once if it refused the request."""
    for line in response.iter_lines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            yield None
            return
        try:
            chunk = json.loads(data)
        except json.JSONDecodeError as exc:
            raise Retryable(f"malformed JSON in the stream: {data[:80]!r}") from exc
        if not isinstance(chunk, dict):
            raise Retryable(f"malformed chunk in the stream: {data[:80]!r}")
        if "error" in chunk:
            if _request_at_fault(chunk["error"]):
                raise LwlocalError(f"{url}: the server refused the request mid-stream: "
                                   f"{_message(chunk)} (not retried: it would fail again)")
            raise Retryable(f"the server reported an error mid-stream: {_message(chunk)}")
        yield chunk


def _request_at_fault(error: Any) -> bool:
    """Whether an error a server sent mid-stream blames the request (see
    ``REQUEST_ERROR_TYPES``), so that it would recur."""
    if not isinstance(error, dict):
        return bool(REQUEST_ERROR_MESSAGE.search(str(error)))
    return (str(error.get("type")) in REQUEST_ERROR_TYPES
            or str(error.get("code")) in REQUEST_ERROR_CODES
            or bool(REQUEST_ERROR_MESSAGE.search(str(error.get("message")))))


def _message(payload: Any) -> str:
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error or payload)[:200]


def _check_status(response: httpx.Response, url: str) -> None:
    """Retry on the statuses a busy or restarting server answers; fail on the rest."""
    code = response.status_code
    if code < 400:
        return
    try:
        detail = _message(response.json())
    except ValueError:
        detail = response.text[:200]
    if code in RETRY_STATUS:
        raise Retryable(f"HTTP {code}: {detail}", _retry_after(response.headers.get("retry-after")))
    raise LwlocalError(f"{url}: HTTP {code}: {detail}")


def _retry_after(value: str | None) -> float | None:
    """The seconds a ``Retry-After`` header asks for (a number of seconds or an HTTP date);
    None without one that can be read."""
    value = (value or "").strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # an HTTP date is GMT
            when = when.replace(tzinfo=datetime.timezone.utc)
        seconds = when.timestamp() - time.time()
    return max(0.0, seconds) if seconds == seconds else None  # NaN: unreadable


def _transport_problem(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer in time ({type(exc).__name__})"
    return f"connection failed ({type(exc).__name__}: {exc})"
