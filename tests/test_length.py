"""Reading the length an instruction asks for, and a job's target (``lwlocal.write.length``)."""

from __future__ import annotations

import pytest

from lwlocal.write.length import DEFAULT_WORDS, choose_target, requested_length
from lwlocal.write.settings import MODES

# (instruction, target, unit) in the styles people and LongBench-Write use
CASES = [
    ("Write a 300-word product description for a solar garden lamp.", 300, "words"),
    ("Write an 800 word forum post about balcony gardening.", 800, "words"),
    ("Please write an essay of 1500 words on tides.", 1500, "words"),
    ("Write a story in about 2,000 words.", 2000, "words"),
    ("Write approximately 1200 words on the Silk Road.", 1200, "words"),
    ("Write around 10,000 words about the history of printing.", 10000, "words"),
    ("Write a report of roughly 3,500 words.", 3500, "words"),
    ("Describe your ideal city in no less than 2000 words.", 2200, "words"),
    ("Write at least 500 words on sleep.", 550, "words"),
    ("Write a letter, not less than 1,000 words.", 1100, "words"),
    ("Write a guide of more than 4000 words.", 4400, "words"),
    ("Write 2000+ words about chess openings.", 2200, "words"),
    ("Write 600 words or more about rain.", 660, "words"),
    ("Write an abstract of no more than 250 words.", 225, "words"),
    ("Summarise it in under 200 words.", 180, "words"),
    ("Keep it within 150 words.", 135, "words"),
    ("Write a speech of up to 1000 words.", 900, "words"),
    ("Write a review between 800 and 1,000 words long.", 900, "words"),
    ("Write 1500 to 2000 words on bees.", 1750, "words"),
    ("Write a 1,500-2,000 word essay on glaciers.", 1750, "words"),
    ("Write a 2k words blog post.", 2000, "words"),
    ("Write a thousand-word essay on trust.", 1000, "words"),
    ("Write five hundred words on silence.", 500, "words"),
    ("Write two thousand five hundred words about a journey.", 2500, "words"),
    ("The essay should have a word count of 1,200.", 1200, "words"),
    ("Word limit: 500.", 450, "words"),
    ("Summarize the following 5,000-word report in 200 words.", 200, "words"),
    ("Write a 300-word review of a 90,000-word novel.", 300, "words"),
    ("Write a summary of 5,000-word reports in 300 words.", 300, "words"),
    ("写一篇800字的议论文。", 800, "characters"),
    ("请写一篇400字左右的社区通知。", 400, "characters"),
    ("写一篇不少于2000字的小说。", 2200, "characters"),
    ("写一篇至少1500字的游记。", 1650, "characters"),
    ("请写一篇3000字以上的报告。", 3300, "characters"),
    ("请写一段500字以内的简介。", 450, "characters"),
    ("写一篇文章，字数不少于800。", 880, "characters"),
    ("写一篇文章，字数要求：1000字左右。", 1000, "characters"),
    ("写一篇1000-1500字的散文。", 1250, "characters"),
    ("写一篇三千字的故事。", 3000, "characters"),
    ("写一篇两千五百字的评论。", 2500, "characters"),
    ("写一部一万字的中篇小说。", 10000, "characters"),
    ("写一篇1.5万字的报告。", 15000, "characters"),
    ("写一篇约2,000字的文章。", 2000, "characters"),
]

# Numbers that are not lengths
TRAPS = [
    "Write a post with 15 emojis about summer.",
    "Write a " + "9" * 400 + "-word essay.",  # no length (it overflowed a float)
    "List 5 bad habits and how to break them.",
    "Summarise the 2024 report on energy.",
    "Top 10 places to visit in Lisbon.",
    "Write about the 3 paragraphs of the constitution.",
    "Describe the crossroads (十字路口) at night.",
    "在十字路口写一首诗。",
    "Write a story about 1984.",
    "Explain what 26 letters (字母) mean to a child.",
    "Write a long essay about the ocean.",
    "Discover the words we lost.",
]


@pytest.mark.parametrize("instruction,words,unit", CASES)
def test_the_length_is_read_from_the_instruction(instruction, words, unit):
    found = requested_length(instruction)
    assert found is not None, instruction
    assert (found.words, found.unit) == (words, unit)
    assert found.phrase in instruction


@pytest.mark.parametrize("instruction", TRAPS)
def test_numbers_that_are_not_lengths_are_left_alone(instruction):
    assert requested_length(instruction) is None


def test_the_shipped_prompts_are_read_as_their_required_lengths():
    from lwlocal.bench.items import load_items

    for item in load_items():
        found = requested_length(item.prompt)
        assert found is not None and found.words == item.length, item.id


@pytest.mark.parametrize("mode", MODES)
def test_the_option_wins_then_the_instruction_then_the_default(mode):
    assert choose_target("Write 300 words.", 900, mode).source == "option"
    asked = choose_target("Write 300 words.", None, mode)
    assert (asked.words, asked.source, asked.phrase) == (300, "instruction", "300 words")
    default = choose_target("Write about tea.", None, mode)
    assert (default.words, default.source) == (DEFAULT_WORDS[mode], "default")
