"""A token picked from the model's logits by a llama.cpp sampler chain, under a grammar where
there is one, checked as llama.cpp's own common sampler checks it (``common_sampler_sample``):
the chain picks a token, the grammar is asked about that token alone, and only where it refuses
is the grammar applied to every candidate and the token picked again.

A grammar at the head of the chain asks about all of the vocabulary's tokens for every token
written (49,152 on the default model): an outline was written at half the rate of plain text
(``benchmarks/grammar_sampling.py``). The picks are llama.cpp's ``common_sampler_sample``'s,
not the grammar-first chain's: top-k, top-p and min-p trim the whole vocabulary before the
grammar is asked, so with the same seed the text differs."""

from __future__ import annotations

import ctypes
import math
from typing import Any

import llama_cpp
import numpy as np

from lwlocal.util.errors import LwlocalError

TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])
assert TOKEN_DATA.itemsize == ctypes.sizeof(llama_cpp.llama_token_data)


class Sampler:
    """``chain`` (penalties, top-k and the rest) and ``grammar`` (a llama.cpp grammar sampler,
    or None), both owned: :meth:`close` frees them."""

    def __init__(self, chain: Any, grammar: Any | None, n_vocab: int) -> None:
        self.chain, self.grammar, self.n_vocab = chain, grammar, n_vocab
        # the candidates a pick is made from, written afresh for each (only under a grammar)
        self._candidates = np.zeros(n_vocab if grammar else 0, dtype=TOKEN_DATA)
        self._ids = np.arange(n_vocab if grammar else 0, dtype=np.int32)

    def sample(self, ctx: Any, row: int) -> int:
        """The next token from the logits of the last batch's ``row``, accepted by the chain
        (and the grammar)."""
        if self.grammar is None:
            return int(llama_cpp.llama_sampler_sample(self.chain, ctx, row))
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, row),
                                       shape=(self.n_vocab,))
        token = self._pick(logits, grammar_first=False)
        if not self._allowed(token):
            token = self._pick(logits, grammar_first=True)
        llama_cpp.llama_sampler_accept(self.grammar, token)
        llama_cpp.llama_sampler_accept(self.chain, token)
        return token

    def _pick(self, logits: np.ndarray, *, grammar_first: bool) -> int:
        candidates = self._candidates
        candidates["id"], candidates["logit"], candidates["p"] = self._ids, logits, 0.0
        array = llama_cpp.llama_token_data_array(
            candidates.ctypes.data_as(ctypes.POINTER(llama_cpp.llama_token_data)),
            len(candidates), -1, False)
        if grammar_first:
            llama_cpp.llama_sampler_apply(self.grammar, ctypes.byref(array))
        llama_cpp.llama_sampler_apply(self.chain, ctypes.byref(array))
        picked = array.data[array.selected]
        if grammar_first and math.isinf(picked.logit):  # llama.cpp aborts on accepting it
            raise LwlocalError("the JSON schema's grammar allows no next token here")
        return int(picked.id)

    def _allowed(self, token: int) -> bool:
        """Whether the grammar lets ``token`` come next."""
        one = (llama_cpp.llama_token_data * 1)(llama_cpp.llama_token_data(token, 1.0, 0.0))
        array = llama_cpp.llama_token_data_array(one, 1, -1, False)
        llama_cpp.llama_sampler_apply(self.grammar, ctypes.byref(array))
        return not math.isinf(one[0].logit)

    def close(self) -> None:
        llama_cpp.llama_sampler_free(self.chain)
        if self.grammar is not None:
            llama_cpp.llama_sampler_free(self.grammar)
