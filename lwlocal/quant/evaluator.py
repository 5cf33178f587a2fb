"""A llama.cpp context that returns the logits of every position of a token chunk, optionally
calling back on every weight-matrix multiplication (to read its input activations)."""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import llama_cpp
import numpy as np

from lwlocal.models.gguf_checks import check_vocabulary
from lwlocal.runtime.kv_cache import ggml_type
from lwlocal.util.cpu import check_threads, default_threads
from lwlocal.util.errors import LwlocalError, SettingError
from lwlocal.util.interrupt import held
from lwlocal.util.quiet import quiet_stderr

# (ggml_tensor *, ask) -> whether the scheduler should compute up to it and call again
TensorCallback = Callable[[int, bool], bool]


MIN_CHUNK = 64  # tokens: fewer leave nothing to score (the second half) or to collect
MAX_CHUNK = 2**20


def check_chunking(n_ctx: int, chunks: int | None, n_threads: int | None = None) -> None:
    """Refuse chunk sizes, chunk counts and threads that cannot be evaluated."""
    if not MIN_CHUNK <= n_ctx <= MAX_CHUNK:
        raise SettingError(f"{{n_ctx}} {n_ctx}: tokens per chunk must be between {MIN_CHUNK} "
                           f"and {MAX_CHUNK}")
    if chunks is not None and chunks < 1:
        raise SettingError(f"{{chunks}} {chunks}: must be at least 1")
    check_threads(n_threads)


def split_chunks(tokens: np.ndarray, n_ctx: int, limit: int | None, label: str,
                 bos: int | None) -> list[np.ndarray]:
    """Consecutive ``n_ctx``-token chunks of ``tokens`` (all, or the first ``limit``), each
    starting with ``bos`` when given (llama-perplexity's and llama-imatrix's chunking)."""
    count = len(tokens) // n_ctx
    if count == 0:
        raise SettingError(f"{label}: too short, {len(tokens)} tokens, fewer than one chunk "
                           f"of {n_ctx}; give a longer text or a smaller {{n_ctx}}")
    out = []
    for i in range(count if limit is None else min(limit, count)):
        chunk = tokens[i * n_ctx: (i + 1) * n_ctx].copy()
        if bos is not None:
            chunk[0] = bos
        out.append(chunk)
    return out


class Evaluator:
    """A GGUF model with one sequence of ``n_ctx`` tokens; ``logits`` evaluates a chunk from an
    empty cache, as llama-perplexity and llama-imatrix do."""

    def __init__(self, path: Path, *, n_ctx: int = 512, n_threads: int | None = None,
                 n_gpu_layers: int = 0, on_tensor: TensorCallback | None = None,
                 kv_type: str = "f16") -> None:
        check_chunking(n_ctx, None, n_threads)
        self.path = path
        self._error: BaseException | None = None
        self._stop: Callable[[], bool] = lambda: False
        self._callback = None
        check_vocabulary(path)
        llama_cpp.llama_backend_init()
        mparams = llama_cpp.llama_model_default_params()
        mparams.n_gpu_layers = n_gpu_layers
        with held(), quiet_stderr():
            self._model = llama_cpp.llama_model_load_from_file(str(path).encode(), mparams)
        if not self._model:
            raise LwlocalError(f"{path}: llama.cpp could not load it as a model")
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = n_ctx
        cparams.n_batch = n_ctx
        cparams.n_ubatch = min(n_ctx, 512)
        cparams.n_threads = cparams.n_threads_batch = n_threads or default_threads()
        cparams.type_k = cparams.type_v = ggml_type(kv_type)
        if kv_type != "f16":  # llama.cpp keeps a quantized V cache only with flash attention
            cparams.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
        if on_tensor is not None:
            self._callback = llama_cpp.ggml_backend_sched_eval_callback(
                self._guard(on_tensor))
            cparams.cb_eval = self._callback
        with held(), quiet_stderr():
            self._ctx = llama_cpp.llama_init_from_model(self._model, cparams)
        if not self._ctx:
            llama_cpp.llama_model_free(self._model)
            raise LwlocalError(f"{path}: llama.cpp could not make a context of {n_ctx} tokens")
        self._vocab = llama_cpp.llama_model_get_vocab(self._model)
        self.n_ctx = n_ctx
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
        self.add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self._vocab))
        self.bos = llama_cpp.llama_vocab_bos(self._vocab)
        self._batch = llama_cpp.llama_batch_init(n_ctx, 0, 1)

    def _guard(self, on_tensor: TensorCallback) -> Callable[[int, bool, int], bool]:
        """An exception raised in the callback would be lost inside C: keep it, and raise it
        when the evaluation returns. After an error or an interrupt, the next tensor asked
        about is asked for, and the evaluation stops once it is computed."""

        def callback(tensor: int, ask: bool, _user_data: int) -> bool:
            if self._error is not None or self._stop():
                return ask
            try:
                return on_tensor(tensor, ask)
            except BaseException as exc:  # noqa: BLE001 - raised again once llama.cpp returns
                self._error = exc
                return False

        return callback

    def tokenize(self, text: str) -> np.ndarray:
        """The text's tokens, with BOS first where the model wants one (as the llama.cpp tools)."""
        data = text.encode()
        size = len(data) + 2
        buffer = (llama_cpp.llama_token * size)()
        n = llama_cpp.llama_tokenize(self._vocab, data, len(data), buffer, size, True, False)
        if n < 0:
            raise LwlocalError(f"{self.path}: could not tokenize the text")
        return np.ctypeslib.as_array(buffer)[:n].copy()

    def chunks(self, text: str, limit: int | None = None, label: str = "the text"
               ) -> list[np.ndarray]:
        """The text's consecutive ``n_ctx``-token chunks (all, or the first ``limit``), each
        starting with BOS where the model wants one (llama-perplexity's and llama-imatrix's
        chunking)."""
        return split_chunks(self.tokenize(text), self.n_ctx, limit, label,
                            self.bos if self.add_bos else None)

    def logits(self, tokens: np.ndarray) -> np.ndarray:
        """Evaluate ``tokens`` from an empty cache; the logits of every position,
        ``(len(tokens), n_vocab)``."""
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(self._ctx), True)
        batch = self._batch
        n = len(tokens)
        for i, token in enumerate(tokens):
            batch.token[i] = int(token)
            batch.pos[i] = i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = 1
        batch.n_tokens = n
        with held() as self._stop:  # Ctrl-C would be raised (and lost) inside the callback
            status = llama_cpp.llama_decode(self._ctx, batch)
            if self._error is not None:
                error, self._error = self._error, None
                raise error
        if status != 0:
            raise LwlocalError(f"{self.path}: llama.cpp failed to evaluate a chunk ({status})")
        pointer = llama_cpp.llama_get_logits(self._ctx)
        flat = np.ctypeslib.as_array(ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)),
                                     shape=(n * self.n_vocab,))
        return flat.reshape(n, self.n_vocab).copy()

    def close(self) -> None:
        if self._ctx:
            with quiet_stderr():
                llama_cpp.llama_batch_free(self._batch)
                llama_cpp.llama_free(self._ctx)
                llama_cpp.llama_model_free(self._model)
            self._ctx = None

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
