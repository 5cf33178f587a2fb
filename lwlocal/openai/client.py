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

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import httpx

from lwlocal.openai.endpoint import Server
from lwlocal.openai.retries import (
    BACKOFF_CAP,
    RETRY_AFTER_CAP,
    Retry,
    Retryable,
    check_status,
    transport_problem,
)
from lwlocal.openai.stream_events import read_events
from lwlocal.runtime.chat import NO_HOOKS, Hooks, Message, check_turns
from lwlocal.runtime.engine import Generation, Sampling, Stats
from lwlocal.util.errors import LwlocalError, SettingError

# servers (by their models' ``owned_by``) that go on with a conversation's last assistant
# reply when asked (``continue_final_message``, with ``add_generation_prompt`` off)
CONTINUING_SERVERS = frozenset({"llamacpp", "vllm", "lwlocal"})
BYTES_PER_TOKEN = 3  # for estimating a conversation's tokens: fewer than any tokenizer averages
TOKENS_PER_MESSAGE = 8  # the chat template's markers around each turn, estimated
FINISH_REASONS = {"stop": "eog", "length": "length"}


@dataclass
class _Reply:
    pieces: list[str]
    stop: str | None = None
    usage: dict[str, Any] | None = None
    timings: dict[str, Any] | None = None  # llama-server's, with each token
    chunks: int = 0
    first_token_at: float | None = None


class OpenAIChat:
    """Streaming chat completions against one server, as a writer's backend.

    Where the server goes on with a reply (``continues``: llama-server, vLLM, ``lwlocal
    serve``), a reply that may not end yet (``Hooks.may_end``) is held as a local model's is:
    asked with end-of-turn banned (``ignore_eos``) and stopped once it may end, then gone on
    with in a second request that may end it. Elsewhere ``Hooks.min_tokens`` is sent, which
    vLLM and ``lwlocal serve`` honour and others ignore."""

    remote = True

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
        self.continues = card.get("owned_by") in CONTINUING_SERVERS

    def close(self) -> None:
        self._client.close()

    @property
    def n_ctx(self) -> int | None:
        return self._n_ctx

    def count(self, messages: Sequence[Message], reply_start: str = "") -> int:
        """An estimate on the high side: the server's tokenizer is not at hand."""
        return len(reply_start.encode()) // BYTES_PER_TOKEN + sum(
            len(m.content.encode()) // BYTES_PER_TOKEN + TOKENS_PER_MESSAGE for m in messages)

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
            raise Retryable(transport_problem(exc)) from exc
        check_status(response, self.server.url)
        try:
            return list(response.json().get("data") or [])
        except (ValueError, AttributeError) as exc:
            raise LwlocalError(f"{self.server.url}/models: not an OpenAI model list") from exc

    def _sticky_slot(self) -> int | None:
        """The llama-server slot this client keeps to: ``server.slot`` if the server has it
        (``/props``: ``total_slots``), else the lowest slot idle now (``/slots``), so that a
        job's turns find their prefix in one slot's KV cache (a request sent as the last one's
        stream closes would find that slot still busy and go to an empty one); None for
        servers that route requests themselves."""
        wanted = self.server.slot
        try:
            if wanted is None:
                idle = [s.get("id") for s in self._get("/slots")
                        if isinstance(s, dict) and s.get("is_processing") is False]
                return min((i for i in idle if isinstance(i, int)), default=None)
            total = self._get("/props").get("total_slots")
        except (httpx.HTTPError, ValueError, AttributeError, TypeError):
            return None
        return wanted if isinstance(total, int) and wanted < total else None

    def _get(self, path: str) -> Any:
        """The JSON of a GET of ``path`` at the server's root (an error raised otherwise)."""
        response = self._client.get(self.server.root + path)
        response.raise_for_status()
        return response.json()

    def _body(self, messages: Sequence[Message], reply_start: str | None, sampling: Sampling,
              max_tokens: int, json_schema: dict[str, Any] | None) -> dict[str, Any]:
        turns = [*messages, *([] if reply_start is None else [Message("assistant", reply_start)])]
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in turns],
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
        if reply_start is not None:
            body |= {"continue_final_message": True, "add_generation_prompt": False}
        if json_schema is not None:
            body["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "reply", "schema": json_schema, "strict": True}}
        return body

    def complete(self, messages: Sequence[Message], sampling: Sampling, *, max_tokens: int,
                 json_schema: dict[str, Any] | None = None, hooks: Hooks = NO_HOOKS
                 ) -> Generation:
        """As :meth:`ChatBackend.complete`, ``hooks.may_end`` as the class says."""
        check_turns(messages)
        if json_schema is None and self.continues and hooks.may_end is not None:
            return self._held(messages, None, sampling, max_tokens, hooks)
        return self._request(messages, None, sampling, max_tokens, json_schema, hooks)[0]

    def continue_reply(self, messages: Sequence[Message], reply_start: str, sampling: Sampling,
                       *, max_tokens: int, hooks: Hooks = NO_HOOKS) -> Generation:
        """As :meth:`ContinuingBackend.continue_reply`, where the server ``continues``."""
        if not self.continues:
            raise LwlocalError(f"{self.server.url}: this server does not go on with a reply")
        check_turns(messages)
        if hooks.may_end is not None:
            return self._held(messages, reply_start, sampling, max_tokens, hooks)
        return self._request(messages, reply_start, sampling, max_tokens, None, hooks)[0]

    def _held(self, messages: Sequence[Message], reply_start: str | None, sampling: Sampling,
              max_tokens: int, hooks: Hooks) -> Generation:
        """The reply, its end-of-turn held until ``hooks.may_end()``: asked with end-of-turn
        banned and stopped once it may end, then gone on with in a request that may end it."""
        may_end, stop_early = hooks.may_end, hooks.should_stop
        assert may_end is not None
        if may_end():
            return self._request(messages, reply_start, sampling, max_tokens, None, hooks)[0]

        def early() -> bool:
            return stop_early is not None and stop_early()

        first, used = self._request(
            messages, reply_start, sampling, max_tokens, None,
            replace(hooks, should_stop=lambda: early() or may_end()), ignore_eos=True)
        if first.stop != "stopped" or early() or used >= max_tokens:
            return first

        def on_retry() -> None:  # what the first request streamed stays
            if hooks.on_retry is not None:
                hooks.on_retry()
            if hooks.on_text is not None:
                hooks.on_text(first.text)

        rest, _ = self._request(messages, (reply_start or "") + first.text, sampling,
                                max_tokens - used, None, replace(hooks, on_retry=on_retry))
        return Generation(text=first.text + rest.text, stop=rest.stop)

    def _request(self, messages: Sequence[Message], reply_start: str | None,
                 sampling: Sampling, max_tokens: int, json_schema: dict[str, Any] | None,
                 hooks: Hooks, *, ignore_eos: bool = False) -> tuple[Generation, int]:
        """One streamed request, going on with ``reply_start`` where given; the reply and
        the tokens it took."""
        if self.n_ctx is not None:  # vLLM refuses prompt + max_tokens beyond its context
            max_tokens = max(1, min(max_tokens,
                                    self.n_ctx - self.count(messages, reply_start or "")))
        body = self._body(messages, reply_start, sampling, max_tokens, json_schema)
        if ignore_eos:
            body["ignore_eos"] = True
        elif hooks.min_tokens:
            body["min_tokens"] = min(hooks.min_tokens, max_tokens)
        started = time.perf_counter()
        reply: _Reply = self._retrying(lambda: self._stream(body, hooks), hooks.on_retry)
        generated = self._account(reply, self.count(messages, reply_start or ""), started)
        return Generation(text="".join(reply.pieces), stop=reply.stop or "length"), generated

    def _stream(self, body: dict[str, Any], hooks: Hooks) -> _Reply:
        reply = _Reply(pieces=[])
        finished = False
        try:
            with self._client.stream("POST", "chat/completions", json=body) as response:
                if response.status_code >= 400:
                    response.read()
                check_status(response, self.server.url)
                for chunk in read_events(response, self.server.url):
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
            raise Retryable(transport_problem(exc)) from exc
        if not finished and reply.stop is None:
            raise Retryable("the stream ended before the reply did (truncated)")
        return reply

    def _account(self, reply: _Reply, estimate: int, started: float) -> int:
        """Add one request to the stats, from the server's usage (the prompt's ``estimate``
        without one); the tokens it generated."""
        usage = reply.usage or _usage_from_timings(reply.timings) or {}
        prompt = int(usage.get("prompt_tokens") or estimate)
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
        return generated


def _usage_from_timings(timings: dict[str, Any] | None) -> dict[str, Any] | None:
    """llama-server's ``timings`` (prompt tokens found cached, evaluated, generated) as usage."""
    if not timings or "cache_n" not in timings or "prompt_n" not in timings:
        return None
    cached = int(timings["cache_n"])
    return {"prompt_tokens": cached + int(timings["prompt_n"]),
            "prompt_tokens_details": {"cached_tokens": cached},
            "completion_tokens": int(timings.get("predicted_n") or 0)}
