"""Loading a GGUF into a llama.cpp context with the planner's settings, and what a context
already holds of a token list."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import llama_cpp

from lwlocal.models.gguf_checks import check_vocabulary
from lwlocal.runtime.kv_cache import ggml_type
from lwlocal.runtime.llama_log import loading, log_path
from lwlocal.util.cpu import check_threads, default_threads
from lwlocal.util.errors import LwlocalError
from lwlocal.util.interrupt import held


def load_llama(path: Path, *, n_ctx: int, n_batch: int, n_threads: int | None,
               flash_attn: bool, kv_type: str, n_gpu_layers: int) -> llama_cpp.Llama:
    """``path`` loaded with one context, prompts evaluated on as many threads as tokens are
    generated on (as llama.cpp's tools do; llama-cpp-python's default is every logical CPU,
    whatever ``n_threads`` says); a one-line error naming the file where llama.cpp cannot
    load it."""
    cache_type = ggml_type(kv_type)
    check_vocabulary(path)
    check_threads(n_threads)
    threads = n_threads or default_threads()
    try:
        with held(), loading():  # llama.cpp logs through a Python callback while it loads
            return llama_cpp.Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_batch=n_batch,
                n_ubatch=n_batch,
                n_threads=threads,
                n_threads_batch=threads,
                flash_attn=flash_attn,
                type_k=cache_type,
                type_v=cache_type,
                n_gpu_layers=n_gpu_layers,
                split_mode=llama_cpp.LLAMA_SPLIT_MODE_NONE,  # one GPU, as the plan assumes
                main_gpu=0,
                verbose=True,  # nothing redirected: its log goes to log_path()
            )
    except Exception as exc:
        # what a damaged file makes llama_cpp.Llama raise varies: ValueError,
        # UnicodeDecodeError on a special token's text, a Jinja error on the chat template
        raise LwlocalError(f"{path}: llama.cpp could not load it ({exc}; its log: "
                           f"{log_path()})") from exc


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest shared prefix of two token lists."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def reusable_prefix(llm: llama_cpp.Llama, tokens: Sequence[int], known: int = 0) -> int:
    """How many leading ``tokens`` the context's KV cache already holds and can keep (all but
    the last when it holds them all: the logits after them must be computed again). The first
    ``known`` are known to be held, and not compared again."""
    cached = known + common_prefix(llm.input_ids[known:llm.n_tokens].tolist(), tokens[known:])
    return cached - 1 if cached == len(tokens) else cached
