"""The check that a server goes on with a reply (``continue_final_message``) as vLLM and
llama-server do, for each server the tests run: greedy, a reply asked for in two requests (the
second going on with the first's text) is the reply asked for in one, and a reply held past
where the model ends its turn (``ignore_eos`` until ``may_end``) goes on."""

from __future__ import annotations

from lwlocal.openai.client import OpenAIChat
from lwlocal.runtime.chat import Hooks, Message
from lwlocal.runtime.engine import Sampling

LONG = [Message("user", "Write a long story about a lighthouse keeper and his daughter.")]
SHORT = [Message("user", "What is the capital of France? Answer in one word.")]


def check_replies_gone_on_with(chat: OpenAIChat, greedy: Sampling) -> None:
    assert chat.continues
    requests = chat.stats.requests
    whole = chat.complete(LONG, greedy, max_tokens=60)
    pieces: list[str] = []
    split = chat.complete(LONG, greedy, max_tokens=60, hooks=Hooks(
        on_text=pieces.append, may_end=lambda: len(pieces) >= 25))
    assert chat.stats.requests == requests + 3  # the split reply took two
    assert split.text == whole.text == "".join(pieces)
    plain = chat.complete(SHORT, greedy, max_tokens=200)
    pieces.clear()
    held = chat.complete(SHORT, greedy, max_tokens=200, hooks=Hooks(
        on_text=pieces.append, may_end=lambda: len(pieces) >= 40))
    assert plain.stop == "eog" and len(plain.text.split()) < 20
    assert held.text.startswith(plain.text) and len(pieces) >= 40
