"""What a job's run reports: each section against its budget, the job's words, the engine's
counts and the settings it ran with (``write --json``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

RUN_SETTINGS = ("words_source", "model", "mode", "backend", "base_url", "n_ctx", "kv_type",
                "flash_attn", "n_gpu_layers", "n_batch", "speculate", "draft_model")


@dataclass
class SectionReport:
    """How one section came out against its plan."""

    index: int
    title: str
    planned: int
    written: int
    stop: str
    repairs: list[dict[str, str]] = field(default_factory=list)
    # what writing it took in this run (0 for a section read from the journal)
    generated_tokens: int = 0
    decode_tokens_per_s: float = 0.0


@dataclass
class JobResult:
    """What a finished (or this run of a) job produced, and what it cost."""

    job: str
    document_path: str
    words: int
    planned_words: int
    sections: list[SectionReport] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    review: dict[str, Any] = field(default_factory=dict)
    predicted_seconds: float | None = None  # the time plan's, for what this run did

    def as_dict(self) -> dict[str, Any]:
        stats = self.stats
        context = stats.get("context_tokens", 0)
        return {
            "job": self.job,
            "document": self.document_path,
            "words": self.words,
            "planned_words": self.planned_words,
            "sections": [vars(s) for s in self.sections],
            "prompt_tokens": stats.get("prompt_tokens", 0),
            "cached_prompt_tokens": stats.get("cached_prompt_tokens", 0),
            "prompt_tokens_evaluated": stats.get("prompt_tokens_evaluated", 0),
            "context_tokens": context,
            "prompt_to_context": round(stats.get("prompt_tokens_evaluated", 0) / context, 3)
            if context
            else None,
            "window_moves": stats.get("window_moves", 0),
            "generated_tokens": stats.get("generated_tokens", 0),
            "prefill_tokens_per_s": stats.get("prefill_tokens_per_s", 0.0),
            "decode_tokens_per_s": stats.get("decode_tokens_per_s", 0.0),
            "drafted": stats.get("drafted", 0),
            "accepted": stats.get("accepted", 0),
            "acceptance_rate": stats.get("acceptance_rate", 0.0),
            "settings": self.settings,
            "seconds": round(self.seconds, 2),
            "predicted_seconds": None if self.predicted_seconds is None
            else round(self.predicted_seconds, 1),
            "review": self.review,
        }
