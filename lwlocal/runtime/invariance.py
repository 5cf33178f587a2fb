"""Whether llama.cpp computes a batch of tokens exactly as it computes them one at a time, with
given context settings, on this machine and build: what makes a resumed job and speculation
write what an uninterrupted plain run writes (docs/reproducible.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import llama_cpp
import numpy as np

from lwlocal.runtime.llama_context import load_llama

# past 256 tokens, where one token's attention over an f16 cache takes llama.cpp's split path
CHECK_TOKENS = 320


@dataclass(frozen=True)
class Invariance:
    """The largest difference between the last token's logits after a batched prefill and
    after one token at a time (0.0: bit for bit the same)."""

    tokens: int
    max_logit_difference: float

    @property
    def holds(self) -> bool:
        return self.max_logit_difference == 0.0

    def as_dict(self) -> dict[str, object]:
        return {"batch_invariant": self.holds, "batch_check_tokens": self.tokens,
                "batch_max_logit_difference": self.max_logit_difference}


def _last_logits(llm: llama_cpp.Llama) -> np.ndarray:
    return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1),
                                 shape=(llm.n_vocab(),)).copy()


def check_invariance(path: Path, text: str, *, n_ctx: int, n_batch: int,
                     n_threads: int | None, flash_attn: bool, kv_type: str,
                     n_gpu_layers: int) -> Invariance:
    """Evaluate the first ``CHECK_TOKENS`` tokens of ``text`` in batches of ``n_batch``, then
    one at a time from an empty cache, in one context of ``path`` with these settings."""
    llm = load_llama(path, n_ctx=max(n_ctx, CHECK_TOKENS + 1), n_batch=n_batch,
                     n_threads=n_threads, flash_attn=flash_attn, kv_type=kv_type,
                     n_gpu_layers=n_gpu_layers)
    try:
        tokens = llm.tokenize(text.encode())[:CHECK_TOKENS]
        llm.eval(tokens)
        batched = _last_logits(llm)
        llm.reset()
        llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        for token in tokens:
            llm.eval([token])
        single = _last_logits(llm)
    finally:
        llm.close()
    return Invariance(len(tokens), float(np.abs(batched - single).max()))
