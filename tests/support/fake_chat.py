"""A chat backend that needs no model, and a writing session around it, for fast tests of the
terminal app: an outline request gets an outline of ``sections`` sections, any other request
prose; one word is one token. Every hook is honoured. With ``paced`` the test lets words out
with :meth:`FakeChat.release` (nothing streams until it does), so a test can stop a reply
part-way without timing."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

from lwlocal.runtime.chat import NO_HOOKS, Hooks, Message
from lwlocal.runtime.engine import Generation, Sampling, Stats
from lwlocal.write.jobs import Session
from lwlocal.write.settings import MEMORY_FIELDS, JobSettings

PROSE = ("Green tea rewards patience. Warm the pot first and measure the leaves with care. "
         "Pour water that has cooled a little, then wait a minute before tasting. ")
GATE_POLL = 0.02  # seconds between looks at the cancel flag while waiting for a release


class FakeChat:
    """A :class:`lwlocal.runtime.chat.ContinuingBackend` without a model."""

    def __init__(self, sections: int = 3, n_ctx: int = 4096, paced: bool = False) -> None:
        self.sections = sections
        self.n_ctx = n_ctx
        self.stats = Stats()
        self.requests: list[list[Message]] = []
        self.continued: list[str] = []  # the reply starts continued
        self.returned = threading.Event()  # set each time a reply has ended
        self._gate = threading.Semaphore(0) if paced else None
        self._free = not paced

    def release(self, words: int) -> None:
        """Let ``words`` more words out (paced only)."""
        assert self._gate is not None
        for _ in range(words):
            self._gate.release()

    def release_all(self) -> None:
        """Stop pacing: every word from now on streams at once."""
        self._free = True
        if self._gate is not None:
            self._gate.release()

    def count(self, messages: Sequence[Message]) -> int:
        return sum(len(m.content.split()) + 4 for m in messages)

    def complete(self, messages: Sequence[Message], sampling: Sampling, *, max_tokens: int,
                 json_schema: dict[str, Any] | None = None, hooks: Hooks = NO_HOOKS
                 ) -> Generation:
        self.requests.append(list(messages))
        text = self._outline() if json_schema else PROSE * (max_tokens // 20 + 1)
        return self._stream(messages, text, max_tokens, hooks)

    def continue_reply(self, messages: Sequence[Message], reply_start: str, sampling: Sampling,
                       *, max_tokens: int, hooks: Hooks = NO_HOOKS) -> Generation:
        self.requests.append(list(messages))
        self.continued.append(reply_start)
        return self._stream(messages, PROSE * (max_tokens // 20 + 1), max_tokens, hooks)

    def _outline(self) -> str:
        return json.dumps({"sections": [
            {"title": f"Part {i}", "main_point": f"What part {i} says", "words": 100}
            for i in range(1, self.sections + 1)]})

    def _wait(self, hooks: Hooks) -> bool:
        """Wait for a release; False when cancelled first."""
        while not self._free and self._gate is not None and not self._gate.acquire(
                timeout=GATE_POLL):
            if hooks.cancel is not None and hooks.cancel.is_set():
                return False
        return not (hooks.cancel is not None and hooks.cancel.is_set())

    def _stream(self, messages: Sequence[Message], text: str, max_tokens: int,
                hooks: Hooks) -> Generation:
        self.returned.clear()
        try:
            return self._words(messages, text, max_tokens, hooks)
        finally:
            self.returned.set()

    def _words(self, messages: Sequence[Message], text: str, max_tokens: int,
               hooks: Hooks) -> Generation:
        prompt = self.count(messages)
        if hooks.on_prefill:
            hooks.on_prefill(prompt, prompt)
        result = Generation(stop="eog")
        pieces = [w + " " for w in text.split()]
        for piece in pieces[:max_tokens]:
            if not self._wait(hooks):
                result.stop = "cancelled"
                break
            result.tokens.append(len(result.tokens))
            result.text += piece
            self.stats.generated_tokens += 1
            self.stats.context_tokens = prompt + len(result.tokens)
            if hooks.on_text:
                hooks.on_text(piece)
            if hooks.should_stop and hooks.should_stop():
                result.stop = "stopped"
                break
        else:
            result.stop = "eog" if len(pieces) <= max_tokens else "length"
        self.stats.requests += 1
        return result


class FakeSession(Session):
    """A :class:`Session` over a :class:`FakeChat`: nothing is loaded or planned."""

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
