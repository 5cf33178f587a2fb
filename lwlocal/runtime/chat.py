"""Conversations as messages, and the interface the writer talks to: a local engine or a server.

The writer builds each request as the whole conversation so far. A backend turns it into what
its model sees: the local one into tokens (a reply in the tokens the model wrote it in, where
the writer kept them, else tokenized from its text: the KV cache is reused up to where they
differ), a server
backend into an OpenAI chat request whose prefix stays byte-identical from request to request,
so the server's prompt cache does the reuse.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeGuard, runtime_checkable

from lwlocal.families.prompt_format import PromptFormat
from lwlocal.runtime.engine import Engine, Generation, Sampling, Stats
from lwlocal.util.errors import LwlocalError


@dataclass(frozen=True)
class Message:
    """One turn: ``role`` is ``system``, ``user`` or ``assistant``. An assistant turn may carry
    the ``tokens`` the model spelled it with (:meth:`TokenBackend.reply_tokens`), for the
    backend of that model to use instead of tokenizing ``content``."""

    role: str
    content: str
    tokens: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Hooks:
    """How a caller follows and steers a reply as it streams.

    ``on_text`` receives each new piece; ``on_prefill(done, total)`` follows the evaluation of
    the prompt where the backend can tell (a local model); ``may_end`` (when false, the model
    may not end its turn yet), ``should_stop`` (asked after each piece) and ``cancel`` steer
    it; a server, which cannot ask ``may_end``, is sent ``min_tokens`` instead (the fewest
    tokens before the turn may end, as vLLM and ``lwlocal serve`` take it). ``on_retry`` is
    called before a failed request is sent again, so that what was streamed can be dropped.
    ``avoid_first`` are texts the reply must not begin with the first token of (a start that
    went wrong before), where the backend can (a local model).
    """

    on_text: Callable[[str], None] | None = None
    on_prefill: Callable[[int, int], None] | None = None
    may_end: Callable[[], bool] | None = None
    min_tokens: int = 0
    should_stop: Callable[[], bool] | None = None
    on_retry: Callable[[], None] | None = None
    cancel: threading.Event | None = None
    avoid_first: tuple[str, ...] = ()


NO_HOOKS = Hooks()


class ChatBackend(Protocol):
    """What the writer needs of a model: continue a conversation, count it, report stats.
    ``remote`` is true for a server's model, which cannot be kept from a start
    (``Hooks.avoid_first``)."""

    remote: bool

    @property
    def stats(self) -> Stats:
        """Counters over the backend's life."""

    @property
    def n_ctx(self) -> int | None:
        """The context window in tokens (None when the server does not say)."""

    def count(self, messages: Sequence[Message]) -> int:
        """Tokens the conversation takes (a close upper estimate where it cannot be exact)."""

    def complete(self, messages: Sequence[Message], sampling: Sampling, *, max_tokens: int,
                 json_schema: dict[str, Any] | None = None, hooks: Hooks = NO_HOOKS
                 ) -> Generation:
        """The assistant's reply to ``messages`` (the last one is the user's)."""


@runtime_checkable
class ContinuingBackend(ChatBackend, Protocol):
    """A backend that can also go on with a reply that was stopped part-way (a paused
    section), rather than write it again: where ``continues`` (a server may not)."""

    continues: bool

    def continue_reply(self, messages: Sequence[Message], reply_start: str, sampling: Sampling,
                       *, max_tokens: int, hooks: Hooks = NO_HOOKS) -> Generation:
        """The rest of the assistant's reply to ``messages`` that begins with ``reply_start``
        (the result holds only what follows it)."""


@runtime_checkable
class WindowBackend(ChatBackend, Protocol):
    """A backend that can leave a conversation's oldest turns out of its KV cache without
    evaluating the turns after them again (a local model)."""

    def move_window(self, old: Sequence[Message], new: Sequence[Message],
                    hooks: Hooks = NO_HOOKS) -> bool:
        """Hold ``new``, which is ``old`` with turns left out, both ending with the same
        request; False where it could not (the next request then evaluates what it lacks).
        ``hooks.on_prefill`` follows what is evaluated, ``hooks.cancel`` stops it."""


@runtime_checkable
class TokenBackend(ChatBackend, Protocol):
    """A backend whose model's own tokens for a reply can be kept and handed back (a local
    model): a reply it wrote in other tokens than its tokenizer gives for the text (an odd
    word), handed back as text, is evaluated again from there; in its own tokens, it is not."""

    @property
    def model_key(self) -> str:
        """Which model (and so tokenizer) the tokens are of."""

    def reply_tokens(self, messages: Sequence[Message], text: str) -> tuple[int, ...] | None:
        """Tokens spelling ``text``, the reply just written to ``messages``: those the model
        wrote for it (in the last request) as far as they spell the start of ``text``, then the
        rest tokenized (None where the last request was not ``messages``' reply)."""


def continues(chat: ChatBackend) -> TypeGuard[ContinuingBackend]:
    """Whether ``chat`` can go on with a reply stopped part-way."""
    return isinstance(chat, ContinuingBackend) and chat.continues


def check_turns(messages: Sequence[Message]) -> None:
    """Refuse a conversation that is not: an optional system turn, then user and assistant
    turns alternating, starting and ending with the user's."""
    turns = list(messages[1:] if messages and messages[0].role == "system" else messages)
    expected = ["user" if i % 2 == 0 else "assistant" for i in range(len(turns))]
    if not turns or [m.role for m in turns] != expected or turns[-1].role != "user":
        raise LwlocalError("messages must alternate user and assistant turns (after an "
                           "optional system turn), starting and ending with the user")


def _whole_characters(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


class LocalChat:
    """A conversation backend over a local :class:`Engine` and the model's prompt format."""

    remote = False
    continues = True

    def __init__(self, engine: Engine, fmt: PromptFormat) -> None:
        self.engine = engine
        self.format = fmt

    @property
    def stats(self) -> Stats:
        return self.engine.stats

    @property
    def n_ctx(self) -> int:
        return self.engine.n_ctx

    def render(self, messages: Sequence[Message]) -> list[int]:
        """The conversation's tokens, laid out by the prompt format."""
        check_turns(messages)
        system = messages[0].content if messages[0].role == "system" else None
        turns = messages[1:] if system is not None else messages
        tokens = self.engine.tokenize(self.format.first_turn(turns[0].content, system),
                                      start=True)
        for message in turns[1:]:
            if message.role != "assistant":
                tokens += self.engine.tokenize(self.format.next_turn(message.content))
            elif message.tokens is not None and all(0 <= t < self.engine.n_vocab
                                                    for t in message.tokens):
                tokens += message.tokens
            else:
                tokens += self.engine.tokenize(message.content)
        return tokens

    @property
    def model_key(self) -> str:
        return self.engine.model_key

    def reply_tokens(self, messages: Sequence[Message], text: str) -> tuple[int, ...] | None:
        prompt, held = self.render(messages), self.engine.produced
        if held[:len(prompt)] != prompt:
            return None
        want, reply = text.encode(), held[len(prompt):]
        ends = [0]  # bytes spelled by the reply's first n tokens, n = 0, 1, ...
        for token in reply:
            piece = self.engine.token_bytes(token)
            if ends[-1] == len(want) or not want.startswith(piece, ends[-1]):
                break
            ends.append(ends[-1] + len(piece))
        kept = len(ends) - 1
        while kept and not _whole_characters(want[:ends[kept]]):  # the rest: from a character
            kept -= 1
        rest = want[ends[kept]:].decode()
        tokens = (*reply[:kept], *(self.engine.tokenize(rest) if rest else ()))
        if b"".join(map(self.engine.token_bytes, tokens)) != want:
            return None  # a tokenizer whose pieces do not spell the text byte for byte
        return tokens

    def count(self, messages: Sequence[Message]) -> int:
        return len(self.render(messages))

    def complete(self, messages: Sequence[Message], sampling: Sampling, *, max_tokens: int,
                 json_schema: dict[str, Any] | None = None, hooks: Hooks = NO_HOOKS
                 ) -> Generation:
        return self._generate(self.render(messages), sampling, max_tokens, json_schema, hooks)

    def continue_reply(self, messages: Sequence[Message], reply_start: str, sampling: Sampling,
                       *, max_tokens: int, hooks: Hooks = NO_HOOKS) -> Generation:
        start = self.engine.tokenize(reply_start)
        return self._generate(self.render(messages) + start, sampling, max_tokens, None, hooks,
                              replied=len(start))

    def move_window(self, old: Sequence[Message], new: Sequence[Message],
                    hooks: Hooks = NO_HOOKS) -> bool:
        """Move the engine's window from ``old`` to ``new`` (:meth:`Engine.move_window`) up to
        their last request, which is left to the reply that follows."""
        if len(new) < 2:  # the request alone is left: nothing to move
            return False
        last = len(self.engine.tokenize(self.format.next_turn(new[-1].content)))
        return self.engine.move_window(self.render(old)[:-last], self.render(new)[:-last],
                                       hooks.on_prefill, hooks.cancel)

    def _generate(self, context: list[int], sampling: Sampling, max_tokens: int,
                  json_schema: dict[str, Any] | None, hooks: Hooks, replied: int = 0
                  ) -> Generation:
        return self.engine.generate(context, sampling, max_tokens=max_tokens,
                                    json_schema=json_schema, may_end=hooks.may_end,
                                    should_stop=hooks.should_stop, on_text=hooks.on_text,
                                    on_prefill=hooks.on_prefill, cancel=hooks.cancel,
                                    avoid_first=self._first_tokens(hooks.avoid_first),
                                    replied=replied)

    def _first_tokens(self, texts: Sequence[str]) -> list[int]:
        """The token each of ``texts`` begins with."""
        return [tokens[0] for tokens in map(self.engine.tokenize, texts) if tokens]

