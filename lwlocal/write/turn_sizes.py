"""How many tokens the writer's own text adds to a job: its outline request, the outline, and
each section's request, counted from its templates at the model's tokens per word (what the
time plan counts; the memory plan keeps its margins, ``memory/context_need.py``)."""

from __future__ import annotations

from lwlocal.memory.context_need import Turns
from lwlocal.write.outline import outline_prompt, section_range
from lwlocal.write.words import count_words
from lwlocal.write.writer import SECTION_REQUEST, WRITE_INTRO

# an outline section: a short title, a main point of a sentence or two, a word count
SECTION_PLAN_WORDS = 30
JSON_TOKENS_PER_SECTION = 12  # braces, keys and quotes around an outline section's words
TURN_TOKENS = 8  # the chat template's marks around a turn


def turn_sizes(prompt: str, words: int, sections: int, tokens_per_word: float) -> Turns:
    """The writer's turns for a job of ``words`` in ``sections`` with ``prompt``."""
    def tokens(text: str, extra_words: int = 0) -> int:
        return round((count_words(text) + extra_words) * tokens_per_word) + TURN_TOKENS

    request = tokens(SECTION_REQUEST.format(index=1, count=sections, title="", words=words,
                                            main_point=""), SECTION_PLAN_WORDS)
    return Turns(
        outline_prompt=tokens(outline_prompt(prompt, words, section_range(words))),
        outline_per_section=round(SECTION_PLAN_WORDS * tokens_per_word) + JSON_TOKENS_PER_SECTION,
        head=tokens(WRITE_INTRO.format(prompt=prompt, outline="")) + request,
        request=request)
