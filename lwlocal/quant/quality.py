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

from lwlocal.errors import LwlocalError
from lwlocal.models import check_gguf
from lwlocal.progress import Progress, ProgressCallback, ignore
from lwlocal.quant.evaluator import Evaluator

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


def evaluate(base: Path, quant: Path, text: str, *, n_ctx: int = 512,
             chunks: int | None = None, label: str = "", n_threads: int | None = None,
             progress: ProgressCallback = ignore) -> QualityReport:
    """Compare ``quant`` with ``base`` on ``text``. The base runs first and its
    log-probabilities wait on disk, so that only one model is in memory at a time."""
    for path in (base, quant):
        check_gguf(path)
    start = time.monotonic()
    evaluator = Evaluator(base, n_ctx=n_ctx, n_threads=n_threads)
    try:
        pieces = evaluator.chunks(text, chunks, label or "the text")
    except LwlocalError:
        evaluator.close()
        raise
    per_chunk = n_ctx - 1 - n_ctx // 2
    count = len(pieces) * per_chunk
    nll_base = np.empty(count)
    top_base = np.empty(count, dtype=np.int64)

    def report(step: int, which: str) -> None:
        progress(Progress("eval", step=step, steps=2 * len(pieces), done=step * n_ctx,
                          total=2 * len(pieces) * n_ctx, message=which,
                          rate=step * n_ctx / (time.monotonic() - start)))

    with tempfile.TemporaryDirectory(prefix="lwlocal-eval-") as folder:
        stored = np.lib.format.open_memmap(Path(folder) / "base.npy", mode="w+",
                                           dtype=np.uint16, shape=(count, evaluator.n_vocab))
        row = 0
        with evaluator:
            for i, chunk in enumerate(pieces, 1):
                for logp, targets in _scored(evaluator, chunk):
                    rows = slice(row, row + len(targets))
                    nll_base[rows] = -logp[np.arange(len(targets)), targets]
                    top_base[rows] = logp.argmax(axis=1)
                    stored[rows] = np.rint((np.clip(logp, LOG_PROB_FLOOR, 0) - LOG_PROB_FLOOR)
                                           * (_LEVELS / -LOG_PROB_FLOOR))
                    row += len(targets)
                report(i, "base")

        nll = np.empty(count)
        kld = np.empty(count)
        same_top = np.empty(count, dtype=bool)
        row = 0
        with Evaluator(quant, n_ctx=n_ctx, n_threads=n_threads) as evaluator:
            if evaluator.n_vocab != stored.shape[1]:
                raise LwlocalError(f"{quant}: its vocabulary ({evaluator.n_vocab}) is not the "
                                   f"base's ({stored.shape[1]}); not a quant of {base}")
            for i, chunk in enumerate(pieces, 1):
                for logq, targets in _scored(evaluator, chunk):
                    rows = slice(row, row + len(targets))
                    nll[rows] = -logq[np.arange(len(targets)), targets]
                    same_top[rows] = logq.argmax(axis=1) == top_base[rows]
                    levels = stored[rows]
                    logp = levels * (-LOG_PROB_FLOOR / _LEVELS) + LOG_PROB_FLOOR
                    terms = np.exp(logp) * (logp - logq)
                    kld[rows] = np.where(levels > 0, terms, 0.0).sum(axis=1)
                    row += len(targets)
                report(len(pieces) + i, "quant")
        del stored

    return QualityReport(
        base=str(base), quant=str(quant), text=label, ctx=n_ctx, chunks=len(pieces),
        tokens=count, ppl_base=float(np.exp(nll_base.mean())), ppl_quant=float(np.exp(nll.mean())),
        ppl_ratio=float(np.exp(nll.mean() - nll_base.mean())), kld_mean=float(kld.mean()),
        kld_median=float(np.median(kld)), kld_p99=float(np.percentile(kld, 99)),
        kld_max=float(kld.max()), top1_agreement=float(same_top.mean()),
        seconds=time.monotonic() - start)
