"""The engine reports the prompt's evaluation batch by batch and stops between batches when
cancelled; the context in use is counted as it grows."""

from __future__ import annotations

import threading

import pytest

from lwlocal.runtime.engine import Engine, Sampling
from lwlocal.util.samples import ENGLISH

pytestmark = pytest.mark.model


def test_prompt_evaluation_reports_progress_and_stops_when_cancelled(default_model):
    engine = Engine(default_model, n_ctx=1024, n_batch=64, n_threads=1)
    context = engine.tokenize(" ".join([ENGLISH] * 3), start=True)[:300]
    seen: list[tuple[int, int]] = []
    cancel = threading.Event()

    def on_prefill(done: int, total: int) -> None:
        seen.append((done, total))
        if len(seen) == 2:
            cancel.set()

    stopped = engine.generate(context, Sampling(), max_tokens=8, on_prefill=on_prefill,
                              cancel=cancel)
    assert stopped.stop == "cancelled" and stopped.tokens == []
    assert seen == [(64, 300), (128, 300)] and engine.stats.context_tokens == 128

    seen.clear()
    grown: list[int] = []
    result = engine.generate(context, Sampling(temperature=0), max_tokens=4,
                             on_prefill=on_prefill,
                             on_text=lambda _: grown.append(engine.stats.context_tokens))
    assert seen[0] == (64, 172) and seen[-1] == (172, 172)  # the cached 128 kept
    assert len(result.tokens) == 4 and grown[0] == 300 and grown == sorted(grown)
