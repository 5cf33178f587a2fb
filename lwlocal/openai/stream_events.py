"""A streamed reply's server-sent events as JSON objects, and the errors a server sends inside
a stream: retried when the server failed on its side, failed at once when it blames the
request."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx

from lwlocal.openai.retries import Retryable, error_message
from lwlocal.util.errors import LwlocalError

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


def read_events(response: httpx.Response, url: str) -> Iterator[dict[str, Any] | None]:
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
                                   f"{error_message(chunk)} (not retried: it would fail again)")
            raise Retryable(f"the server reported an error mid-stream: {error_message(chunk)}")
        yield chunk


def _request_at_fault(error: Any) -> bool:
    """Whether an error a server sent mid-stream blames the request (see
    ``REQUEST_ERROR_TYPES``), so that it would recur."""
    if not isinstance(error, dict):
        return bool(REQUEST_ERROR_MESSAGE.search(str(error)))
    return (str(error.get("type")) in REQUEST_ERROR_TYPES
            or str(error.get("code")) in REQUEST_ERROR_CODES
            or bool(REQUEST_ERROR_MESSAGE.search(str(error.get("message")))))
