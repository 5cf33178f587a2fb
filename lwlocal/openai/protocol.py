"""The OpenAI chat-completions wire protocol as lwlocal reads it: a typed request, checked.

Every way a request can be malformed is a :class:`~lwlocal.util.errors.LwlocalError` with one
line saying what is wrong (the server answers it with a 400): bodies that are not JSON, nest
deeper than ``MAX_JSON_DEPTH`` or hold ``NaN``/``Infinity``, fields of the wrong type, numbers
out of range, text that is not Unicode, JSON schemas that cannot be made a grammar.
"""

from __future__ import annotations

import json
import math
import random
import re
from dataclasses import dataclass
from typing import Any

from lwlocal.runtime.chat import Message, check_turns
from lwlocal.runtime.engine import Sampling
from lwlocal.runtime.grammar import json_grammar
from lwlocal.util.errors import LwlocalError

FINISH = {"eog": "stop", "length": "length", "stopped": "stop", "cancelled": "stop"}
ANY_JSON_OBJECT: dict[str, Any] = {"type": "object"}
MAX_JSON_DEPTH = 64  # a chat request nests about 10 deep with a JSON schema in it
INT32_MAX = 2**31 - 1
# a string (to skip; to the end of the body if it is not closed, so that a scan stays linear)
# or a bracket
_JSON_NESTING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?|[][{}]', re.DOTALL)


@dataclass
class ChatRequest:
    """What one chat completion request asks for; ``model`` is None where it names none."""

    model: str | None
    messages: list[Message]
    reply_start: str | None  # an assistant reply to go on with (``continue_final_message``)
    sampling: Sampling
    max_tokens: int | None
    min_tokens: int
    ignore_eos: bool
    json_schema: dict[str, Any] | None
    grammar: str | None  # the grammar ``json_schema`` makes, already checked to fit
    stream: bool
    include_usage: bool
    continuous_usage: bool


def _check_depth(raw: bytes) -> None:
    """Refuse JSON nested deeper than ``MAX_JSON_DEPTH`` before it is decoded (the decoder
    recurses, and so does everything that walks what it returns)."""
    depth = 0
    for match in _JSON_NESTING.finditer(raw):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise LwlocalError(f"the request nests deeper than {MAX_JSON_DEPTH} levels")
        elif token in (b"]", b"}"):
            depth -= 1


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is too large a number")
    return value


def decode_body(raw: bytes) -> Any:
    """A request body as JSON: UTF-8, at most ``MAX_JSON_DEPTH`` deep, finite numbers only."""
    _check_depth(raw)
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant,
                          parse_float=_finite)
    except UnicodeDecodeError as exc:
        raise LwlocalError("the request body is not UTF-8") from exc
    except ValueError as exc:  # JSONDecodeError, a refused constant, too many digits
        raise LwlocalError(f"the request body is not JSON ({exc})") from exc


def _text(value: Any, what: str) -> str:
    """``value`` as a string that UTF-8 can carry (JSON lets a lone surrogate through)."""
    if not isinstance(value, str):
        raise LwlocalError(f"{what} must be a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise LwlocalError(f"{what} is not valid Unicode ({exc.reason})") from exc
    return value


def _content(value: Any) -> str:
    """A message's text: a string, or the text parts of a content list."""
    if isinstance(value, list):
        if not all(isinstance(part, dict) for part in value):
            raise LwlocalError("a message's content parts must be objects")
        return "".join(_text(part.get("text", ""), "a content part's text") for part in value)
    if not isinstance(value, str):
        raise LwlocalError("a message's content must be a string or a list of text parts")
    return _text(value, "a message's content")


def _messages(value: Any, continuing: bool) -> tuple[list[Message], str | None]:
    """The conversation, and with ``continuing`` the assistant reply it ends with, to go on
    with (vLLM's and llama-server's ``continue_final_message``)."""
    if not isinstance(value, list) or not all(isinstance(m, dict) for m in value):
        raise LwlocalError("messages must be a list of objects")
    messages = [Message(_text(m.get("role"), "a message's role"), _content(m.get("content", "")))
                for m in value]
    reply_start = None
    if continuing:
        if not messages or messages[-1].role != "assistant":
            raise LwlocalError("continue_final_message needs the messages to end with the "
                               "assistant's reply")
        reply_start = messages.pop().content
    check_turns(messages)
    return messages, reply_start


def _number(body: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    """The number ``body[key]`` (``default`` when absent or null), between ``low`` and ``high``."""
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise LwlocalError(f"{key} must be a number")
    if not low <= value <= high:
        raise LwlocalError(f"{key} must be between {low} and {high}")
    return float(value)


def _integer(body: dict[str, Any], key: str, low: int, high: float = math.inf) -> int | None:
    """The whole number ``body[key]`` (None when absent or null), from ``low`` to ``high``."""
    value = body.get(key)
    if value is None:
        return None
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or isinstance(value, float) and not value.is_integer()):
        raise LwlocalError(f"{key} must be a whole number")
    if not low <= value <= high:
        raise LwlocalError(f"{key} must be at least {low}" if high == math.inf
                           else f"{key} must be from {low} to {high}")
    return int(value)


def _sampling(body: dict[str, Any]) -> Sampling:
    defaults = Sampling()
    penalty = "repeat_penalty" if "repeat_penalty" in body else "repetition_penalty"
    seed = _integer(body, "seed", -(2**63), 2**64 - 1)
    top_k = _integer(body, "top_k", 0, INT32_MAX)
    return Sampling(
        temperature=_number(body, "temperature", defaults.temperature, 0.0, 100.0),
        top_p=_number(body, "top_p", defaults.top_p, 0.0, 1.0),
        top_k=defaults.top_k if top_k is None else top_k,
        min_p=_number(body, "min_p", defaults.min_p, 0.0, 1.0),
        repeat_penalty=_number(body, penalty, defaults.repeat_penalty, 0.01, 100.0),
        seed=random.getrandbits(32) if seed is None else seed,
        # llama-server's fields and defaults: off unless a request asks
        dry_multiplier=_number(body, "dry_multiplier", 0.0, 0.0, 100.0),
        dry_base=_number(body, "dry_base", defaults.dry_base, 1.0, 100.0),
        dry_allowed_length=_integer(body, "dry_allowed_length", 1, INT32_MAX)
        or defaults.dry_allowed_length,
        dry_penalty_last_n=_integer(body, "dry_penalty_last_n", 0, INT32_MAX)
        or defaults.dry_penalty_last_n,
    )


def _object(value: Any, what: str) -> dict[str, Any]:
    """``value`` if it is a JSON object (absent or null: an empty one)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise LwlocalError(f"{what} must be an object")
    return value


def _schema(response_format: Any) -> dict[str, Any] | None:
    """The JSON schema a ``response_format`` asks the reply to follow (OpenAI's ``json_schema``
    and llama-cpp-python's ``json_object`` with ``schema``)."""
    response_format = _object(response_format, "response_format")
    kind = response_format.get("type", "text")
    if kind == "text":
        return None
    if kind == "json_schema":
        spec = _object(response_format.get("json_schema"), "response_format.json_schema")
        schema = spec.get("schema")
    elif kind == "json_object":
        schema = response_format.get("schema")
    else:
        raise LwlocalError(f"response_format type {str(kind)[:40]!r} is not supported")
    return _object(schema, "the JSON schema") or ANY_JSON_OBJECT


def _flag(body: dict[str, Any], key: str) -> bool:
    value = body.get(key)
    if value is not None and not isinstance(value, bool):
        raise LwlocalError(f"{key} must be true or false")
    return bool(value)


def parse_request(body: Any) -> ChatRequest:
    """Read a chat completion request; a one-line error for what cannot be served. Building a
    JSON schema's grammar can take a while: call this off the event loop."""
    if not isinstance(body, dict):
        raise LwlocalError("the request needs a JSON object with a messages list")
    max_tokens = _integer(body, "max_completion_tokens", 1)
    if max_tokens is None:
        max_tokens = _integer(body, "max_tokens", 1)
    schema = _schema(body.get("response_format"))
    options = _object(body.get("stream_options"), "stream_options")
    model = body.get("model")
    continuing = _flag(body, "continue_final_message")
    if continuing and body.get("add_generation_prompt") is True:
        raise LwlocalError("continue_final_message and add_generation_prompt cannot both be "
                           "true")
    messages, reply_start = _messages(body.get("messages"), continuing)
    if continuing and schema is not None:
        raise LwlocalError("continue_final_message cannot go with a response_format schema")
    return ChatRequest(
        model=None if model is None or model == "" else _text(model, "model"),
        messages=messages,
        reply_start=reply_start,
        sampling=_sampling(body),
        max_tokens=max_tokens,
        min_tokens=_integer(body, "min_tokens", 0) or 0,
        ignore_eos=_flag(body, "ignore_eos"),
        json_schema=schema,
        grammar=None if schema is None else json_grammar(schema),
        stream=_flag(body, "stream"),
        include_usage=_flag(options, "include_usage"),
        continuous_usage=_flag(options, "continuous_usage_stats"),
    )
