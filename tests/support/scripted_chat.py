"""A chat backend that answers from a script: each request gets the next scripted reply,
streamed a word at a time through the hooks as the real backends stream, so a test can put a
fault where it wants and see what the writer does about it. ``continuing=False`` makes it a
server-like backend (no ``continue_reply``)."""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lwlocal.runtime.chat import NO_HOOKS, Hooks, Message
from lwlocal.runtime.engine import Generation, Sampling, Stats
from tests.support.bounds import HANG

_PIECE = re.compile(r"\s*\S+|\s+")


@dataclass
class Request:
    """What one request asked: its conversation, the start it continued, the starts it had to
    avoid, its seed."""

    messages: list[Message]
    start: str
    avoid_first: tuple[str, ...]
    seed: int


@dataclass
class ScriptedChat:
    """Replies from ``script`` in order (the last one again once it runs out; a reply that
    goes on from a start, without that start where it begins with it); a reply ends as the
    model ending its turn (``eog``) unless the hooks stop it first."""

    script: list[str]
    n_ctx: int | None = 8192
    stats: Stats = field(default_factory=Stats)
    requests: list[Request] = field(default_factory=list)
    hold: threading.Event | None = None  # requests after the first wait until it is set
    remote = True

    def count(self, messages: Sequence[Message]) -> int:
        return sum(len(m.content.split()) + 4 for m in messages)

    def complete(self, messages: Sequence[Message], sampling: Sampling, *, max_tokens: int,
                 json_schema: dict[str, Any] | None = None, hooks: Hooks = NO_HOOKS
                 ) -> Generation:
        return self._reply(messages, "", sampling, max_tokens, hooks)

    def _reply(self, messages: Sequence[Message], start: str, sampling: Sampling,
               max_tokens: int, hooks: Hooks) -> Generation:
        self.requests.append(Request(list(messages), start, hooks.avoid_first, sampling.seed))
        if self.hold is not None and len(self.requests) > 1:
            assert self.hold.wait(HANG), "the test never let the request through"
        text = self.script[min(len(self.requests), len(self.script)) - 1]
        text = text[len(start):] if start and text.startswith(start) else text  # what follows
        result = Generation(stop="eog")
        for piece in _PIECE.findall(text)[:max_tokens]:
            result.text += piece
            result.tokens.append(len(result.tokens))
            if hooks.on_text is not None:
                hooks.on_text(piece)
            if hooks.should_stop is not None and hooks.should_stop():
                result.stop = "stopped"
                break
        self.stats.generated_tokens += len(result.tokens)
        return result


@dataclass
class ScriptedLocalChat(ScriptedChat):
    """The same, going on with a reply as a local model does."""

    remote = False
    continues = True

    def continue_reply(self, messages: Sequence[Message], reply_start: str, sampling: Sampling,
                       *, max_tokens: int, hooks: Hooks = NO_HOOKS) -> Generation:
        return self._reply(messages, reply_start, sampling, max_tokens, hooks)
