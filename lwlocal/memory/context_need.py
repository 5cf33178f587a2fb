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
class Need:
    """How much context a job needs: all of it, and the least it can run in."""

    full: int
    minimum: int
    tokens_per_word: float
    mode: str
    measured: bool  # tokens/word measured with the model's tokenizer (else assumed)
    prompt_tokens: int = 0  # of them, the user's prompt (estimated like the words)


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
        return Need(need, need, tokens_per_word, mode, measured, prompt)
    head = HEAD_TOKENS + prompt + n_sections * OUTLINE_TOKENS_PER_SECTION
    largest_section = 2 * output / n_sections  # budgets may differ; allow twice the mean
    full = head + n_sections * REQUEST_TOKENS_PER_SECTION + output
    minimum = head + 2 * (REQUEST_TOKENS_PER_SECTION + largest_section)
    return Need(round_up(full), round_up(min(full, minimum)), tokens_per_word, mode, measured,
                prompt)
