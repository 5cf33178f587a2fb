"""The OpenAI chat-completions wire protocol as lwlocal reads it: a typed request, checked."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from llama_cpp.llama_grammar import json_schema_to_gbnf

from lwlocal.runtime.chat import Message, check_turns
from lwlocal.runtime.engine import Sampling
from lwlocal.util.errors import LwlocalError

FINISH = {"eog": "stop", "length": "length", "stopped": "stop", "cancelled": "stop"}
ANY_JSON_OBJECT: dict[str, Any] = {"type": "object"}


@dataclass
class ChatRequest:
    """What one chat completion request asks for."""

    messages: list[Message]
    sampling: Sampling
    max_tokens: int | None
    min_tokens: int
    json_schema: dict[str, Any] | None
    stream: bool
    include_usage: bool
    continuous_usage: bool


def _content(value: Any) -> str:
    """A message's text: a string, or the text parts of a content list."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(p.get("text", "") for p in value if isinstance(p, dict))
    raise LwlocalError("a message's content must be a string or a list of text parts")


def _schema(response_format: Any) -> dict[str, Any] | None:
    """The JSON schema a ``response_format`` asks the reply to follow (OpenAI's ``json_schema``
    and llama-cpp-python's ``json_object`` with ``schema``), checked to make a grammar."""
    if not response_format:
        return None
    if not isinstance(response_format, dict):
        raise LwlocalError("response_format must be an object")
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") or ANY_JSON_OBJECT
    elif kind == "json_object":
        schema = response_format.get("schema") or ANY_JSON_OBJECT
    else:
        raise LwlocalError(f"response_format type {kind!r} is not supported")
    try:
        json_schema_to_gbnf(json.dumps(schema))
    except Exception as exc:
        raise LwlocalError(f"the JSON schema cannot be made a grammar ({exc})") from exc
    return schema


def parse_request(body: Any) -> ChatRequest:
    """Read a chat completion request; a one-line error for what cannot be served."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        raise LwlocalError("the request needs a JSON object with a messages list")
    try:
        messages = [Message(str(m["role"]), _content(m.get("content", "")))
                    for m in body["messages"]]
    except (KeyError, TypeError) as exc:
        raise LwlocalError("every message needs a role and a content") from exc
    check_turns(messages)
    defaults = Sampling()
    try:
        sampling = Sampling(
            temperature=float(body.get("temperature", defaults.temperature)),
            top_p=float(body.get("top_p", defaults.top_p)),
            top_k=int(body.get("top_k", defaults.top_k)),
            min_p=float(body.get("min_p", defaults.min_p)),
            repeat_penalty=float(body["repeat_penalty"] if "repeat_penalty" in body else
                                 body.get("repetition_penalty", defaults.repeat_penalty)),
            seed=int(body["seed"]) if body.get("seed") is not None else random.getrandbits(32),
        )
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        max_tokens = None if max_tokens is None else int(max_tokens)
        min_tokens = int(body.get("min_tokens") or 0)
    except (TypeError, ValueError) as exc:
        raise LwlocalError(f"a sampling setting is not a number ({exc})") from exc
    if max_tokens is not None and max_tokens <= 0:
        raise LwlocalError("max_tokens must be positive")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise LwlocalError("stream_options must be an object")
    return ChatRequest(messages, sampling, max_tokens, min_tokens,
                       _schema(body.get("response_format")), bool(body.get("stream")),
                       bool(options.get("include_usage")),
                       bool(options.get("continuous_usage_stats")))
