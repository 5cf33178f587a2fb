"""How far a quant is from its base model on a text: perplexity of both, and the KL divergence
of the quant's next-token distributions from the base's, as ``llama-perplexity
--kl-divergence`` defines them (each chunk starts from an empty cache; its second half is
scored)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lwlocal.models.gguf_file import check_gguf
from lwlocal.quant.evaluator import Evaluator, check_chunking
from lwlocal.runtime.kv_cache import check_kv_type
from lwlocal.util.errors import LwlocalError, SettingError
from lwlocal.util.progress import Progress, ProgressCallback, ignore


def open_model(path: Path, n_ctx: int, n_threads: int | None, kv_type: str = "f16"
               ) -> Evaluator:
    """An evaluator for ``path``: a GGUF file through llama.cpp (with a ``kv_type`` KV cache),
    a checkpoint folder (a GPTQ quant or its source) through transformers."""
    if Path(path).is_dir():
        from lwlocal.quant.hf_evaluator import HFEvaluator

        return HFEvaluator(path, n_ctx=n_ctx, n_threads=n_threads)  # type: ignore[return-value]
    check_gguf(path)
    return Evaluator(path, n_ctx=n_ctx, n_threads=n_threads, kv_type=kv_type)

LOG_PROB_FLOOR = -16.0  # base log-probabilities below this are left out of the KLD (as llama.cpp)
_LEVELS = 65535  # base log-probabilities are kept as 16-bit fixed point on disk, as llama.cpp
ROWS_AT_ONCE = 64


@dataclass(frozen=True)
class QualityReport:
    base: str
    quant: str
    text: str
    ctx: int
    chunks: int
    tokens: int
    kv_type: str  # the quant's KV cache (the base's: f16)
    ppl_base: float
    ppl_quant: float
    ppl_ratio: float
    kld_mean: float
    kld_median: float
    kld_p99: float
    kld_max: float
    top1_agreement: float
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-probabilities, in float64."""
    rows = logits.astype(np.float64)
    rows -= rows.max(axis=1, keepdims=True)
    rows -= np.log(np.exp(rows).sum(axis=1, keepdims=True))
    return rows


def _scored(evaluator: Evaluator, chunk: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Log-probabilities of the scored positions of one chunk (its second half, the last
    position excluded) and the tokens they predict, a block of rows at a time."""
    logits = evaluator.logits(chunk)
    first = len(chunk) // 2
    for start in range(first, len(chunk) - 1, ROWS_AT_ONCE):
        stop = min(start + ROWS_AT_ONCE, len(chunk) - 1)
        yield log_softmax(logits[start:stop]), chunk[start + 1: stop + 1]


class BaseRun:
    """The base model's side, evaluated once: per scored token its negative log-likelihood,
    its top token, and its log-probabilities (on disk, 16-bit, as llama.cpp keeps them), so
    that any number of quants compare against it with one model in memory at a time."""

    def __init__(self, base: Path, text: str, *, n_ctx: int = 512, chunks: int | None = None,
                 label: str = "", n_threads: int | None = None,
                 progress: ProgressCallback = ignore) -> None:
        self.base, self.label, self.n_ctx, self.n_threads = base, label, n_ctx, n_threads
        self._folder = tempfile.TemporaryDirectory(prefix="lwlocal-eval-")
        start = time.monotonic()
        try:
            with open_model(base, n_ctx, n_threads) as evaluator:
                self.chunks = evaluator.chunks(text, chunks, label or "the text")
                self.count = len(self.chunks) * (n_ctx - 1 - n_ctx // 2)
                self.nll = np.empty(self.count)
                self.top = np.empty(self.count, dtype=np.int64)
                self.log_probs = np.lib.format.open_memmap(
                    Path(self._folder.name) / "base.npy", mode="w+", dtype=np.uint16,
                    shape=(self.count, evaluator.n_vocab))
                for i, (rows, logp, targets) in enumerate(self._scored(evaluator), 1):
                    self.nll[rows] = -logp[np.arange(len(targets)), targets]
                    self.top[rows] = logp.argmax(axis=1)
                    self.log_probs[rows] = np.rint(
                        (np.clip(logp, LOG_PROB_FLOOR, 0) - LOG_PROB_FLOOR)
                        * (_LEVELS / -LOG_PROB_FLOOR))
                    self._report(progress, i, start, "base")
        except BaseException:
            self.close()
            raise

    def _scored(self, evaluator: Evaluator) -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
        """Per chunk, per block of scored rows: where they go, log-probabilities, targets."""
        row = 0
        for chunk in self.chunks:
            for logp, targets in _scored(evaluator, chunk):
                yield slice(row, row + len(targets)), logp, targets
                row += len(targets)

    def _report(self, progress: ProgressCallback, rows_done: int, start: float,
                which: str) -> None:
        per_chunk = self.n_ctx - 1 - self.n_ctx // 2
        blocks = -(-per_chunk // ROWS_AT_ONCE)
        if rows_done % blocks == 0:
            step = rows_done // blocks
            progress(Progress("eval", step=step, steps=len(self.chunks),
                              done=step * self.n_ctx, total=len(self.chunks) * self.n_ctx,
                              message=which,
                              rate=step * self.n_ctx / (time.monotonic() - start)))

    def compare(self, quant: Path, progress: ProgressCallback = ignore, kv_type: str = "f16"
                ) -> QualityReport:
        """Evaluate ``quant`` on the same chunks (with a ``kv_type`` KV cache; the base's is
        f16) and compare it with the base."""
        start = time.monotonic()
        nll = np.empty(self.count)
        kld = np.empty(self.count)
        same_top = np.empty(self.count, dtype=bool)
        with open_model(quant, self.n_ctx, self.n_threads, kv_type) as evaluator:
            if evaluator.n_vocab != self.log_probs.shape[1]:
                raise LwlocalError(f"{quant}: its vocabulary ({evaluator.n_vocab}) is not the "
                                   f"base's ({self.log_probs.shape[1]}); not a quant of "
                                   f"{self.base}")
            for i, (rows, logq, targets) in enumerate(self._scored(evaluator), 1):
                nll[rows] = -logq[np.arange(len(targets)), targets]
                same_top[rows] = logq.argmax(axis=1) == self.top[rows]
                levels = self.log_probs[rows]
                logp = levels * (-LOG_PROB_FLOOR / _LEVELS) + LOG_PROB_FLOOR
                terms = np.exp(logp) * (logp - logq)
                kld[rows] = np.where(levels > 0, terms, 0.0).sum(axis=1)
                self._report(progress, i, start, Path(quant).name)
        return QualityReport(
            base=str(self.base), quant=str(quant), text=self.label, ctx=self.n_ctx,
            chunks=len(self.chunks), tokens=self.count, kv_type=kv_type,
            ppl_base=float(np.exp(self.nll.mean())), ppl_quant=float(np.exp(nll.mean())),
            ppl_ratio=float(np.exp(nll.mean() - self.nll.mean())), kld_mean=float(kld.mean()),
            kld_median=float(np.median(kld)), kld_p99=float(np.percentile(kld, 99)),
            kld_max=float(kld.max()), top1_agreement=float(same_top.mean()),
            seconds=time.monotonic() - start)

    def close(self) -> None:
        if hasattr(self, "log_probs"):
            del self.log_probs  # the memory map, before its file goes
        self._folder.cleanup()

    def __enter__(self) -> BaseRun:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def evaluate(base: Path, quant: Path, text: str, *, n_ctx: int = 512,
             chunks: int | None = None, label: str = "", n_threads: int | None = None,
             progress: ProgressCallback = ignore, kv_type: str = "f16") -> QualityReport:
    """Compare ``quant`` with ``base`` on ``text``: the base runs first, then the quant (GGUF
    files or checkpoint folders), the quant with a ``kv_type`` KV cache (``quant`` the base's
    own file: what that cache alone costs)."""
    check_chunking(n_ctx, chunks, n_threads)
    check_kv_type(kv_type)
    if Path(quant).is_dir():
        if kv_type != "f16":
            raise SettingError(f"{{kv_type}} {kv_type}: a checkpoint folder runs through "
                               "transformers, whose KV cache is its own; give a GGUF")
        from lwlocal.quant.gptq import read_config

        read_config(Path(quant))
    else:
        check_gguf(quant)
    with BaseRun(base, text, n_ctx=n_ctx, chunks=chunks, label=label, n_threads=n_threads,
                 progress=progress) as run:
        return run.compare(quant, progress, kv_type)
