"""A chat backend with no model, for fast in-process tests of the CLI, the writer, the terminal
app and the server (the few end-to-end tests run the real default model).

:class:`FakeChat` implements :class:`lwlocal.runtime.chat.ContinuingBackend` as the real
backends do, only with text made up by rule:

- a token is a word of up to six letters (longer words take more: "keeping" is two), or a
  punctuation mark, about as many tokens per word as real tokenizers make of English; each
  turn adds four marker tokens;
- a reply is sentences made of the words of the last user turn (less those the fault detectors
  read as talk about the writing) and of ``PROSE``, one piece per word, drawn with
  a generator seeded by the sampling seed and that turn's text (and the start of a continued
  reply), so the same request gives the same reply;
- the reply wants to end at the first sentence end past the words the request asks for
  ("... about N words"), else past ``DEFAULT_WORDS``, a continued reply's start counted in; it
  never ends while ``hooks.may_end()`` is false or before ``hooks.min_tokens``, and it stops at
  ``max_tokens`` or the end of the context;
- with ``json_schema``, the reply is JSON made from the schema (objects with their required
  properties, arrays of ``maxItems`` items, strings within their lengths), so an outline is
  always valid;
- the hooks are called as the engine calls them: ``cancel`` looked at and ``on_prefill`` called
  once for the prompt, then ``on_text`` for each piece and ``should_stop`` and ``cancel`` after
  it;
- the stats keep a simulated KV cache: a request's tokens already seen in the previous request
  and its reply count as cached, so a writer that keeps its conversation growing shows it as
  the engine would; the context grows with the reply; times are counted at fixed rates, never
  on the clock.

A test steers it two ways. Paced (``FakeChat(paced=True)``), nothing streams until the test
lets pieces out with :meth:`FakeChat.release` or :meth:`FakeChat.release_all`, and a reply
waiting for one ends as cancelled once its ``cancel`` is set: a test stops a reply at an exact
word without timing (a reply neither released nor cancelled fails after ``HANG``). And through
:class:`FakeModel`, which every backend built while the fake is installed shares (the
``fake_model`` fixture): what was asked and answered, and ``on_piece`` (called before each
piece is produced, with the request's number counted from 0, the piece's index and the
request's hooks) to interrupt a reply at a chosen point, or hold it until the caller cancels
it.

:class:`FakeSession` is a writing session over a given :class:`FakeChat`, with no model
resolved or planned (for the terminal app's tests).
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from lwlocal.runtime.chat import NO_HOOKS, Hooks, Message, check_turns
from lwlocal.runtime.engine import Generation, Sampling, Stats
from lwlocal.runtime.llama_context import common_prefix
from lwlocal.util.errors import SettingError
from lwlocal.write.jobs import Session
from lwlocal.write.settings import MEMORY_FIELDS, JobSettings
from tests.support.bounds import HANG

DEFAULT_WORDS = 60  # a reply's length when the request names none
PREFILL_RATE = 2000.0  # simulated tokens per second
DECODE_RATE = 100.0
GATE_POLL = 0.02  # seconds between looks at ``cancel`` while a paced reply waits for a release
_TOKEN = re.compile(r"\w{1,6}|[^\w\s]")
_ASKED_WORDS = re.compile(r"(\d+) words")
_WORD = re.compile(r"[A-Za-z]{3,}")
# words of the writer's own requests that the fault detectors read as talk about the writing
_META_WORDS = frozenset({
    "this", "next", "previous", "following", "above", "below", "each", "every", "section",
    "sections", "paragraph", "chapter", "essay", "article", "guide", "text", "document", "post",
    "report", "outline", "instruction", "request", "prompt", "words", "write", "written",
    "writing", "here", "let", "plain", "prose", "send", "sending", "right", "glad"})


# words every reply may use besides the request's: enough that sentences drawn at random do not
# read as near-repeats of each other (the detectors look at shared word pairs)
PROSE_WORDS = """
    river field stone bread water light garden winter summer market window morning evening
    table road bridge hill forest village harbor salt flour oven wheel clock lamp letter boat
    rain snow wind cloud season kitchen door roof wall path tree leaf root seed flower apple
    grain mill barn farm town street square school friend mother father child teacher baker
    farmer keeper sailor walks opens carries builds grows bakes turns waits finds keeps holds
    warm cold quiet bright slow early late green heavy small old new long deep careful simple
    """
PROSE = PROSE_WORDS.split()


def tokens(text: str) -> list[str]:
    """The fake tokenizer: six letters of a word at most, or a punctuation mark."""
    return _TOKEN.findall(text)


@dataclass
class FakeModel:
    """What every :class:`FakeChat` built while the fake is installed shares: the conversations
    it was asked to continue, the starts of the replies it continued, the replies it gave, and
    a hook into the generation loop; and, for the local backends the ``fake_model`` fixture
    makes, the KV cache type and speculation each was loaded with."""

    requests: list[list[Message]] = field(default_factory=list)
    continued: list[str] = field(default_factory=list)
    replies: list[Generation] = field(default_factory=list)
    on_piece: Callable[[int, int, Hooks], None] | None = None
    backends: list[FakeChat] = field(default_factory=list)
    loaded: list[tuple[str, str]] = field(default_factory=list)


class FakeChat:
    """A :class:`~lwlocal.runtime.chat.ContinuingBackend` that needs no model; ``started`` is
    set once a reply has begun, ``returned`` each time one has ended (cleared as the next
    begins)."""

    remote = False
    continues = True

    def __init__(self, n_ctx: int | None = 4096, model: FakeModel | None = None, *,
                 paced: bool = False) -> None:
        self.stats = Stats()
        self._n_ctx = n_ctx
        self.model = model or FakeModel()
        self.model.backends.append(self)
        self.started = threading.Event()
        self.returned = threading.Event()
        self._cache: list[int] = []  # the token ids of the last request and its reply
        self._gate = threading.Condition()
        self._let_out: int | None = 0 if paced else None  # pieces released; None: unpaced

    @property
    def n_ctx(self) -> int | None:
        return self._n_ctx

    def release(self, pieces: int) -> None:
        """Let ``pieces`` more pieces (words of prose) out (paced only)."""
        with self._gate:
            assert self._let_out is not None, "release() is for a paced FakeChat"
            self._let_out += pieces
            self._gate.notify_all()

    def release_all(self) -> None:
        """Stop pacing: every piece from now on streams at once."""
        with self._gate:
            self._let_out = None
            self._gate.notify_all()

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
        return self._reply(messages, "", sampling, max_tokens, json_schema, hooks)

    def continue_reply(self, messages: Sequence[Message], reply_start: str, sampling: Sampling,
                       *, max_tokens: int, hooks: Hooks = NO_HOOKS) -> Generation:
        self.model.continued.append(reply_start)
        return self._reply(messages, reply_start, sampling, max_tokens, None, hooks)

    def _reply(self, messages: Sequence[Message], start: str, sampling: Sampling,
               max_tokens: int, json_schema: dict[str, Any] | None, hooks: Hooks
               ) -> Generation:
        """The reply to ``messages`` that follows ``start``, streamed through ``hooks``."""
        context = self.render(messages) + tokens(start)
        if self._n_ctx is not None:
            room = self._n_ctx - len(context)
            if room <= 0:
                raise SettingError(f"the conversation's {len(context)} tokens do not fit a "
                                   f"context of {self._n_ctx}; use a larger {{n_ctx}}")
            max_tokens = min(max_tokens, room)
        request = len(self.model.requests)
        self.model.requests.append(list(messages))
        ask = messages[-1].content
        rng = random.Random(sampling.seed * 1_000_003 + zlib.crc32((ask + start).encode()))
        pieces: Iterable[str]  # JSON until it is complete, prose without end
        if json_schema is not None:
            pieces = _json_pieces(json_schema, _words_of(ask), rng)
        else:
            pieces = _prose_pieces(sorted({*_words_of(ask), *PROSE}), rng, first=not start)
        wanted = _asked_words(ask)
        evaluated = self._count_prompt(context)
        result = Generation(stop="length")
        words = start.split()  # the reply's words so far
        self.returned.clear()
        self.started.set()
        try:
            if hooks.cancel is not None and hooks.cancel.is_set():
                result.stop = "cancelled"
                return result
            if hooks.on_prefill is not None:
                hooks.on_prefill(evaluated, evaluated)
            self.stats.context_tokens = len(context)
            for index, piece in enumerate(pieces):
                if self.model.on_piece is not None:
                    self.model.on_piece(request, index, hooks)
                at_sentence_end = not words or words[-1].endswith(".")
                may_end = ((hooks.may_end is None or hooks.may_end())
                           and len(result.tokens) >= hooks.min_tokens)
                if json_schema is None and at_sentence_end and len(words) >= wanted and may_end:
                    result.stop = "eog"
                    break
                if not self._wait_for_release(hooks):
                    result.stop = "cancelled"
                    break
                piece_tokens = tokens(piece)
                result.tokens += _ids(piece_tokens)
                result.text += piece
                words.append(piece)
                self.stats.context_tokens += len(piece_tokens)
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
            return result
        finally:
            self._cache = _ids(context + tokens(result.text))
            self.stats.generated_tokens += len(result.tokens)
            self.stats.decode_seconds += len(result.tokens) / DECODE_RATE
            self.model.replies.append(result)
            self.returned.set()

    def _count_prompt(self, context: list[str]) -> int:
        """Count the prompt in the stats as the engine does, its start found in the simulated
        KV cache (the last token evaluated again when all of it is); the tokens evaluated."""
        cached = common_prefix(self._cache, _ids(context))
        cached = cached - 1 if cached == len(context) else cached
        stats = self.stats
        stats.requests += 1
        stats.prompt_tokens += len(context)
        stats.cached_prompt_tokens += cached
        stats.prompt_tokens_evaluated += len(context) - cached
        stats.prefill_seconds += (len(context) - cached) / PREFILL_RATE
        return len(context) - cached

    def _wait_for_release(self, hooks: Hooks) -> bool:
        """Wait until the test lets the next piece out (at once unless paced); False when the
        request is cancelled first."""
        guard = time.monotonic() + HANG
        with self._gate:
            while self._let_out == 0:
                if hooks.cancel is not None and hooks.cancel.is_set():
                    return False
                assert time.monotonic() < guard, "a paced reply was neither released nor cancelled"
                self._gate.wait(GATE_POLL)
            if self._let_out is not None:
                self._let_out -= 1
        return True


class FakeSession(Session):
    """A :class:`Session` over a :class:`FakeChat`: nothing is resolved, planned or loaded."""

    def __init__(self, settings: JobSettings, chat: FakeChat) -> None:
        self.settings = settings
        self.server = None
        self.model = None
        self.memory_plan = None
        self.chat = chat

    def with_settings(self, settings: JobSettings) -> Session:
        self.settings = settings
        return self

    def placement(self) -> dict[str, Any]:
        return {"backend": "local", "base_url": None, "server_model": None,
                "model": self.settings.model, "model_path": None,
                **dict.fromkeys(MEMORY_FIELDS), "n_ctx": self.chat.n_ctx}


def _ids(pieces: list[str]) -> list[int]:
    """The ids of tokens (a hash of their text)."""
    return [zlib.crc32(piece.encode()) for piece in pieces]


def _words_of(text: str) -> list[str]:
    """The vocabulary a reply draws on: the words of the request (lower case) but those that
    would make its sentences read as talk about the writing (see lwlocal.write.faults)."""
    words = {w.lower() for w in _WORD.findall(text)} - _META_WORDS
    return sorted(words) or ["text"]


def _asked_words(text: str) -> int:
    found = _ASKED_WORDS.findall(text)
    return int(found[-1]) if found else DEFAULT_WORDS


def _prose_pieces(vocabulary: list[str], rng: random.Random, first: bool) -> Iterator[str]:
    """Sentences of 5 to 12 words without end, one piece per word, each after a space but
    the reply's ``first``."""
    space = "" if first else " "
    while True:
        n = rng.randint(5, 12)
        words = [rng.choice(vocabulary) for _ in range(n)]
        words[0] = words[0].capitalize()
        words[-1] += "."
        for word in words:
            yield space + word
            space = " "


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
