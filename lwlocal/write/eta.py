"""Time left in a job: the time plan's seconds for what is left, scaled by how the time taken
so far compares with what the plan gave the same work (``memory/job_time.py``)."""

from __future__ import annotations

import time
from collections.abc import Sequence

SETTLED = 2.0  # seconds of work before the measured pace corrects the plan


class Eta:
    """Seconds left, from the predicted seconds of each step this run takes (the outline, where
    it is drafted, then each section to write; 0 for one the journal already has)."""

    def __init__(self, steps: Sequence[float], started: float | None = None) -> None:
        self.steps = list(steps)
        self.started = time.monotonic() if started is None else started  # the run's start

    @property
    def predicted(self) -> float:
        return sum(self.steps)

    def left(self, step: int, fraction: float) -> float:
        """Seconds left with ``fraction`` (0 to 1) of step ``step`` (0: the first) done."""
        done = sum(self.steps[:step]) + self.steps[step] * min(1.0, max(0.0, fraction)) if (
            step < len(self.steps)) else self.predicted
        elapsed = time.monotonic() - self.started
        scale = elapsed / done if done > 0 and elapsed >= SETTLED else 1.0
        return max(0.0, (self.predicted - done) * scale)
