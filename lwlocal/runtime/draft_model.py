"""Draft-model speculation: a small model with the target's vocabulary guesses the next tokens
one at a time (greedily), and the target verifies them all in one batch.

The draft is greedy, so its distribution q is one-hot and the rule that keeps the target's
distribution is the one :mod:`lwlocal.runtime.speculate` describes for prompt lookup: the
engine samples each position from the target as it would without speculation and keeps a
guess only where the sample equals it. The draft's own KV cache follows the conversation:
what it guessed wrong is dropped from it before it guesses again."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import llama_cpp
import numpy as np

from lwlocal.runtime.kv_cache import DRAFT_KV_TYPE
from lwlocal.runtime.llama_context import load_llama, reusable_prefix
from lwlocal.util.errors import SettingError


def vocabulary(llm: llama_cpp.Llama) -> list[bytes]:
    """Every token's text, in id order."""
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    return [llama_cpp.llama_vocab_get_text(vocab, i)
            for i in range(llama_cpp.llama_vocab_n_tokens(vocab))]


class DraftModel:
    """A draft GGUF loaded beside the target (``target``, whose vocabulary it must have token
    for token), with a context as large as the target's, the same batch, threads and flash
    attention, an f16 KV cache, and all its layers on the GPU when the target has any there
    (``on_gpu``)."""

    def __init__(self, path: Path, target: llama_cpp.Llama, *, n_threads: int | None,
                 flash_attn: bool, on_gpu: bool) -> None:
        self._llm = load_llama(path, n_ctx=target.n_ctx(), n_batch=target.n_batch,
                               n_threads=n_threads, flash_attn=flash_attn,
                               kv_type=DRAFT_KV_TYPE, n_gpu_layers=-1 if on_gpu else 0)
        ours, theirs = vocabulary(self._llm), vocabulary(target)
        if ours != theirs:
            differ = next((i for i, (a, b) in enumerate(zip(ours, theirs, strict=False))
                           if a != b), min(len(ours), len(theirs)))
            raise SettingError(
                f"{{draft_model}} {path}: its vocabulary is not the model's ({len(ours)} tokens "
                f"against {len(theirs)}, first difference at token {differ}); a draft must "
                "share the model's tokenizer")
        self._vocab = llama_cpp.llama_model_get_vocab(self._llm.model)
        self._n_vocab = len(ours)
        self.tokens: list[int] = []
        self._synced = 0  # leading tokens known to be in the KV cache as they are in ``tokens``

    def follow(self, context: Sequence[int]) -> DraftModel:
        """Start guessing after ``context``, evaluated now (what the KV cache holds of it is
        kept), so that the reply's first guesses do not wait for it."""
        self.tokens, self._synced = list(context), 0
        self._catch_up()
        return self

    def append(self, token: int) -> None:
        self.tokens.append(token)

    def _catch_up(self) -> None:
        """Evaluate the tokens not in the KV cache, dropping what it holds past the last token
        it shares with them (the guesses that were wrong)."""
        llm = self._llm
        llm.n_tokens = reusable_prefix(llm, self.tokens, self._synced)  # eval() drops the rest
        llm.eval(self.tokens[llm.n_tokens:])
        self._synced = len(self.tokens)

    def draft(self, k: int) -> list[int]:
        """Up to ``k`` tokens the draft model would write next, greedily; fewer when it would
        end its turn."""
        llm, guesses = self._llm, list[int]()
        self._catch_up()
        while True:
            logits = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
            token = int(np.ctypeslib.as_array(logits, shape=(self._n_vocab,)).argmax())
            if llama_cpp.llama_vocab_is_eog(self._vocab, token):
                return guesses
            guesses.append(token)
            if len(guesses) == k:
                return guesses
            llm.eval([token])
