"""A chat backend with no model, for fast in-process tests of the CLI, the writer and the
terminal app (the few end-to-end tests run the real default model).

:class:`FakeChat` implements :class:`lwlocal.runtime.chat.ChatBackend` as the real backends do,
only with text made up by rule:

- a token is a word of up to six letters (longer words take more: "keeping" is two), or a
  punctuation mark, about as many tokens per word as real tokenizers make of English; each
  turn adds four marker tokens;
- a reply is sentences made of the words of the last user turn, drawn with a generator seeded
  by the sampling seed and that turn's text, so the same request gives the same reply;
- the reply wants to end at the first sentence end past the words the request asks for
  ("... about N words"), else past ``DEFAULT_WORDS``; it never ends while ``hooks.may_end()``
  is false or before ``hooks.min_tokens``, and it stops at ``max_tokens`` or the end of the
  context;
- with ``json_schema``, the reply is JSON made from the schema (objects with their required
  properties, arrays of ``maxItems`` items, strings within their lengths), so an outline is
  always valid;
- the hooks are called as the engine calls them: ``on_text`` for each piece, then
  ``should_stop`` and ``cancel`` after it;
- the stats keep a simulated KV cache: a request's tokens already seen in the previous request
  and its reply count as cached, so a writer that keeps its conversation growing shows it as
  the engine would; times are counted at fixed rates, never on the clock.

A test steers it through :class:`FakeModel`, which every backend built while it is installed
shares: the requests seen, and ``on_piece`` (called before each piece is produced, with the
request's number counted from 0, the piece's index and the request's hooks) to interrupt a
reply at a chosen point, or hold it until the caller cancels it.
"""

from __future__ import annotations

import json
import random
import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lwlocal.runtime.chat import NO_HOOKS, Hooks, Message, check_turns
from lwlocal.runtime.engine import Generation, Sampling, Stats, common_prefix
from lwlocal.util.errors import LwlocalError

DEFAULT_WORDS = 60  # a reply's length when the request names none
PREFILL_RATE = 2000.0  # simulated tokens per second
DECODE_RATE = 100.0
_TOKEN = re.compile(r"\w{1,6}|[^\w\s]")
_ASKED_WORDS = re.compile(r"(\d+) words")
_WORD = re.compile(r"[A-Za-z]{3,}")


def tokens(text: str) -> list[str]:
    """The fake tokenizer: six letters of a word at most, or a punctuation mark."""
    return _TOKEN.findall(text)


@dataclass
class FakeModel:
    """What every :class:`FakeChat` built while the fake is installed shares: the
    conversations it was asked to continue, and a hook into the generation loop."""

    requests: list[list[Message]] = field(default_factory=list)
    on_piece: Callable[[int, int, Hooks], None] | None = None
    backends: list[FakeChat] = field(default_factory=list)


class FakeChat:
    """A :class:`~lwlocal.runtime.chat.ChatBackend` that needs no model."""

    def __init__(self, n_ctx: int | None = 4096, model: FakeModel | None = None) -> None:
        self.stats = Stats()
        self._n_ctx = n_ctx
        self.model = model or FakeModel()
        self.model.backends.append(self)
        self._cache: list[str] = []  # the tokens of the last request and its reply

    @property
    def n_ctx(self) -> int | None:
        return self._n_ctx

    def render(self, messages: Sequence[Message]) -> list[str]:
        """The conversation's tokens, each turn between markers."""
        check_turns(messages)
        out: list[str] = []
        for message in messages:
            out += [f"<{message.role}>", *tokens(message.content), "<end>", "<next>"]
        return out

    def count(self, messages: Sequence[Message]) -> int:
        return len(self.render(messages))

    def complete(self, messages: Sequence[Message], sampling: Sampling, *, max_tokens: int,
                 json_schema: dict[str, Any] | None = None, hooks: Hooks = NO_HOOKS
                 ) -> Generation:
        context = self.render(messages)
        if self._n_ctx is not None:
            room = self._n_ctx - len(context)
            if room <= 0:
                raise LwlocalError(f"context of {len(context)} tokens does not fit "
                                   f"n_ctx={self._n_ctx}")
            max_tokens = min(max_tokens, room)
        request = len(self.model.requests)
        self.model.requests.append(list(messages))
        ask = messages[-1].content
        rng = random.Random(sampling.seed * 1_000_003 + zlib.crc32(ask.encode()))
        if json_schema is not None:
            pieces = _json_pieces(json_schema, _words_of(ask), rng)
        else:
            pieces = _prose_pieces(_words_of(ask), rng, max_tokens + 1)
        wanted = _asked_words(ask)

        cached = common_prefix(self._cache, context)
        cached = cached - 1 if cached == len(context) else cached
        stats = self.stats
        stats.requests += 1
        stats.prompt_tokens += len(context)
        stats.cached_prompt_tokens += cached
        stats.prompt_tokens_evaluated += len(context) - cached
        stats.prefill_seconds += (len(context) - cached) / PREFILL_RATE

        result = Generation(stop="length")
        text: list[str] = []  # one word a piece
        for index, piece in enumerate(pieces):
            if self.model.on_piece is not None:
                self.model.on_piece(request, index, hooks)
            at_sentence_end = not text or text[-1].endswith((".", "}"))
            may_end = ((hooks.may_end is None or hooks.may_end())
                       and len(result.tokens) >= hooks.min_tokens)
            if json_schema is None and at_sentence_end and len(text) >= wanted and may_end:
                result.stop = "eog"
                break
            piece_tokens = tokens(piece)
            result.tokens += [zlib.crc32(t.encode()) & 0xFFFF for t in piece_tokens]
            text.append(piece)
            if hooks.on_text is not None:
                hooks.on_text(piece)
            if len(result.tokens) >= max_tokens:
                break
            if hooks.should_stop is not None and hooks.should_stop():
                result.stop = "stopped"
                break
            if hooks.cancel is not None and hooks.cancel.is_set():
                result.stop = "cancelled"
                break
        else:
            result.stop = "eog"  # a JSON reply is complete
        result.text = "".join(text)
        generated = tokens(result.text)
        self._cache = context + generated
        stats.generated_tokens += len(result.tokens)
        stats.decode_seconds += len(result.tokens) / DECODE_RATE
        stats.context_tokens = len(context) + len(generated)
        return result


def _words_of(text: str) -> list[str]:
    """The vocabulary a reply draws on: the words of the request (lower case)."""
    return sorted({w.lower() for w in _WORD.findall(text)}) or ["text"]


def _asked_words(text: str) -> int:
    found = _ASKED_WORDS.findall(text)
    return int(found[-1]) if found else DEFAULT_WORDS


def _prose_pieces(vocabulary: list[str], rng: random.Random, at_most: int) -> list[str]:
    """Sentences of 5 to 12 words, one piece per word (the first without a leading space)."""
    pieces: list[str] = []
    while len(pieces) < at_most:
        n = rng.randint(5, 12)
        words = [rng.choice(vocabulary) for _ in range(n)]
        words[0] = words[0].capitalize()
        words[-1] += "."
        pieces += [w if not pieces and i == 0 else f" {w}" for i, w in enumerate(words)]
    return pieces


def _json_pieces(schema: dict[str, Any], vocabulary: list[str],
                 rng: random.Random) -> list[str]:
    """A JSON value valid under ``schema``, in pieces of a few characters."""
    text = json.dumps(_value(schema, vocabulary, rng), ensure_ascii=False)
    return [text[i:i + 4] for i in range(0, len(text), 4)]


def _value(schema: dict[str, Any], vocabulary: list[str], rng: random.Random) -> Any:
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: _value(properties[name], vocabulary, rng)
                for name in schema.get("required", list(properties))}
    if kind == "array":
        n = schema.get("maxItems", max(schema.get("minItems", 0), 3))
        return [_value(schema.get("items", {}), vocabulary, rng) for _ in range(n)]
    if kind == "integer":
        return rng.randint(schema.get("minimum", 50), schema.get("maximum", 300))
    if kind == "number":
        return round(rng.uniform(schema.get("minimum", 0), schema.get("maximum", 1)), 3)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "string":
        lo, hi = schema.get("minLength", 1), schema.get("maxLength", 60)
        words = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(2, 6)))
        text = words.capitalize()[:hi].strip()
        return text if len(text) >= lo else text + "x" * (lo - len(text))
    raise ValueError(f"the fake backend cannot make a value of {schema!r}")
