"""A dataset folder described: examples kept and items rejected by reason, the output lengths
(LongBench-Write's count) and their histogram, the documents' languages, and the tokens the
examples make under a model's tokenizer."""

from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from lwlocal.bench.scoring import output_length
from lwlocal.dataset.ledger import read_examples, read_rejected
from lwlocal.models.catalogue import resolve
from lwlocal.runtime.engine import count_tokens
from lwlocal.util.errors import LwlocalError
from lwlocal.write.words import language

# the histogram's bins, by output length: (label, lowest, highest), doubling from 250 words
LENGTH_BINS = (("<250", 0, 249), ("250-500", 250, 499), ("500-1k", 500, 999),
               ("1k-2k", 1000, 1999), ("2k-4k", 2000, 3999), ("4k-8k", 4000, 7999),
               ("8k-16k", 8000, 15999), ("16k-32k", 16000, 31999), (">=32k", 32000, 10**12))


def length_histogram(lengths: list[int]) -> list[dict[str, Any]]:
    """How many lengths fall in each of :data:`LENGTH_BINS`."""
    return [{"bin": label, "low": low, "high": high,
             "count": sum(low <= n <= high for n in lengths)}
            for label, low, high in LENGTH_BINS]


def dataset_stats(folder: Path, tokenizer: str | None = None) -> dict[str, Any]:
    """The figures of ``folder`` (tokens with ``tokenizer``, a card or GGUF; None: the default
    model's)."""
    if not folder.is_dir():
        raise LwlocalError(f"{folder}: not a dataset folder")
    examples, rejected = read_examples(folder), read_rejected(folder)
    lengths = [output_length(e.document) for e in examples]
    model = resolve(tokenizer)
    text = "\n\n".join(f"{e.instruction}\n\n{e.document}" for e in examples)
    return {
        "folder": str(folder),
        "kept": len(examples),
        "rejected": len(rejected),
        "rejected_by_reason": dict(Counter(r for row in rejected for r in row["reasons"])
                                   .most_common()),
        "output_length": {
            "total": sum(lengths),
            "min": min(lengths, default=0),
            "median": statistics.median(lengths) if lengths else 0,
            "mean": round(statistics.fmean(lengths), 1) if lengths else 0,
            "max": max(lengths, default=0),
            "histogram": length_histogram(lengths),
        },
        "languages": dict(Counter(language(e.document) for e in examples).most_common()),
        "tokens": count_tokens(model.path, text) if text else 0,
        "tokenizer": model.card.name if model.card else str(model.path),
    }
