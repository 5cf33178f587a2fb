"""A section's length as it streams: the turn may not end before its floor, and stops at the
first sentence end past its budget, or at ``OVERSHOOT`` of it at the latest."""

from __future__ import annotations

from lwlocal.write.outline import section_floor
from lwlocal.write.words import TOKEN_CAP_PER_WORD, WordCounter, ends_sentence

OVERSHOOT = 1.3  # a section stops at the first sentence end past its budget, or here at the latest


def tokens_for(words: int) -> int:
    """A token budget that ``words`` words (plus the overshoot allowance) fit in."""
    return int(words * TOKEN_CAP_PER_WORD * OVERSHOOT) + 32


class SectionBudget:
    """Holds a section to its word budget as its text streams in.

    The model may not end its turn before its floor (``section_floor``); writing stops at the
    first sentence end past the budget, or at ``OVERSHOOT`` of it at the latest.
    """

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.floor = section_floor(budget)
        self.cap = max(budget + 1, int(budget * OVERSHOOT))
        self.words = WordCounter()

    def reset(self) -> None:
        """Forget what was counted (the request is being sent again)."""
        self.words = WordCounter()

    def add(self, piece: str) -> None:
        self.words.add(piece)

    def may_end(self) -> bool:
        return self.words.count >= self.floor

    def should_stop(self) -> bool:
        count = self.words.count
        return count >= self.cap or (count >= self.budget and ends_sentence(self.words.tail))
