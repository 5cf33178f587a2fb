"""How many tokens of context a writing job needs: all of it, and the least it can run in."""

from __future__ import annotations

import math
from dataclasses import dataclass

CONTEXT_STEP = 256  # llama.cpp pads the KV cache to this many cells
TOKENS_MARGIN = 0.15  # on top of the words -> tokens estimate
HEAD_TOKENS = 400  # instruction and request text at the head of an AgentWrite conversation
OUTLINE_TOKENS_PER_SECTION = 60
REQUEST_TOKENS_PER_SECTION = 50


@dataclass(frozen=True)
class Turns:
    """Tokens of the writer's own text in an AgentWrite job, as the time plan counts them: the
    outline's request and its reply per section, the first section's request (instruction and
    request; the outline in it counted per section) and each later section's request. The
    defaults are the context's margins; ``write/turn_sizes.py`` counts the writer's templates."""

    outline_prompt: int = HEAD_TOKENS
    outline_per_section: int = OUTLINE_TOKENS_PER_SECTION
    head: int = HEAD_TOKENS
    request: int = REQUEST_TOKENS_PER_SECTION


@dataclass(frozen=True)
class Need:
    """How much context a job needs: all of it, and the least it can run in."""

    full: int
    minimum: int
    tokens_per_word: float
    mode: str
    measured: bool  # tokens/word measured with the model's tokenizer (else assumed)
    prompt_tokens: int = 0  # of them, the user's prompt (estimated like the words)
    words: int = 0  # the job's length
    sections: int = 1  # the sections a time plan counts (direct: one answer)
    turns: Turns = Turns()
    pace: float | None = None  # tokens the model generated a word in its runs here
    pace_runs: int = 0  # ... over this many runs (``write/writing_pace.py``)

    @property
    def time_tokens_per_word(self) -> float:
        """Tokens a word of the job takes to write, as the time plan counts them: the model's
        pace here, else the ratio of its tokenizer (or the assumed one)."""
        return self.pace or self.tokens_per_word


def round_up(n: float, step: int = CONTEXT_STEP) -> int:
    return int(math.ceil(n / step) * step)


def context_needed(words: int, mode: str, tokens_per_word: float, n_sections: int,
                   measured: bool = True, prompt_words: int = 0) -> Need:
    """Tokens of context a job needs, with ``TOKENS_MARGIN`` on the words -> tokens estimates
    (of the output, and of the ``prompt_words`` of the user's prompt, which heads every request).

    Direct: prompt + the whole output. AgentWrite: instruction + outline + every section with its
    request (full), or instruction + outline + the two latest sections (the least the writer can
    work in: it drops older sections from the conversation when the context is full).
    """
    output = words * tokens_per_word * (1 + TOKENS_MARGIN)
    prompt = round(prompt_words * tokens_per_word * (1 + TOKENS_MARGIN))
    if mode == "direct":
        need = round_up(HEAD_TOKENS + prompt + output)
        return Need(need, need, tokens_per_word, mode, measured, prompt, words)
    head = HEAD_TOKENS + prompt + n_sections * OUTLINE_TOKENS_PER_SECTION
    largest_section = 2 * output / n_sections  # budgets may differ; allow twice the mean
    full = head + n_sections * REQUEST_TOKENS_PER_SECTION + output
    minimum = head + 2 * (REQUEST_TOKENS_PER_SECTION + largest_section)
    return Need(round_up(full), round_up(min(full, minimum)), tokens_per_word, mode, measured,
                prompt, words, n_sections)
