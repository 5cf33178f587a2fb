"""Prompt-lookup speculation: the lookup, the draft length, the acceptance rule, and the engine
giving the tokens it gives without speculation."""

import random
from collections import Counter

import pytest

from lwlocal.runtime.engine import Engine, Sampling
from lwlocal.runtime.speculate import (
    DRAFT_CAP,
    MISSES_BEFORE_PAUSE,
    PAUSE_TOKENS,
    DraftLength,
    Lookup,
    accept_draft,
)
from lwlocal.util.errors import SettingError

GREEDY = Sampling(temperature=0.0)
# prompts whose answers repeat phrases of the prompt or of themselves, so guesses are accepted
PROMPTS = (
    "Write a long essay about rivers, their sources, their mouths and the towns along them.",
    "List the days of the week, then list them again in the same order, then once more.",
)


def test_lookup_drafts_what_followed_the_latest_longest_match():
    lookup = Lookup([1, 2, 3, 4, 9, 2, 3, 5, 6])
    assert lookup.draft(4) == []  # "5 6" and "6" alone: no n-gram of 2 tokens recurs
    for token in (7, 2, 3):
        lookup.append(token)
    assert lookup.draft(2) == [5, 6]  # "2 3" last occurred before "5 6"
    lookup.append(4)  # "2 3 4" occurred once, before "9": the longer match wins
    assert lookup.draft(3) == [9, 2, 3]
    assert lookup.draft(0) == []


def test_lookup_never_matches_the_end_with_itself():
    lookup = Lookup([5, 6])
    assert lookup.draft(3) == []
    lookup.append(5)
    lookup.append(6)
    assert lookup.draft(3) == [5, 6]  # the earlier "5 6", followed by the later one


def test_draft_length_grows_shrinks_and_pauses():
    length = DraftLength()
    start = length.next()
    length.update(start, start)
    assert length.next() > start  # accepted whole: guess more
    for _ in range(10):
        length.update(length.k, length.k)
    assert length.next() == DRAFT_CAP
    length.update(DRAFT_CAP, 2)
    assert length.next() == 3  # what was accepted, and one more
    for _ in range(MISSES_BEFORE_PAUSE):
        length.update(length.k, 0)
    paused = [length.next() for _ in range(PAUSE_TOKENS)]
    assert paused == [0] * PAUSE_TOKENS and length.next() == 1
    for _ in range(MISSES_BEFORE_PAUSE):  # missing again: a longer pause
        length.update(1, 0)
    assert [length.next() for _ in range(2 * PAUSE_TOKENS)] == [0] * (2 * PAUSE_TOKENS)
    assert length.next() == 1


@pytest.mark.parametrize("p", [[0.5, 0.3, 0.2], [0.05, 0.9, 0.05], [0.0, 0.25, 0.75],
                               [1.0, 0.0, 0.0]])
@pytest.mark.parametrize("draft", [0, 1, 2])
def test_acceptance_rule_gives_the_target_distribution(p, draft):
    """Whatever the (deterministic) draft, the tokens come out as p: each frequency within
    0.015 of p over 20,000 seeded trials (about 5 standard deviations at worst), the draft kept
    as often as p[draft]."""
    rng = random.Random(1234)
    trials = 20_000
    outcomes = [accept_draft(p, draft, rng) for _ in range(trials)]
    counts = Counter(token for token, _ in outcomes)
    for token, prob in enumerate(p):
        assert abs(counts[token] / trials - prob) < 0.015
    kept = sum(accepted for _, accepted in outcomes)
    assert abs(kept / trials - p[draft]) < 0.015
    assert all(token == draft for token, accepted in outcomes if accepted)


def test_sampling_then_comparing_is_the_same_rule():
    """What the engine does (draw from p, keep the draft when they agree) keeps the draft as
    often, and yields the same distribution, as the rule written out."""
    p, draft, trials = [0.1, 0.6, 0.3], 1, 20_000
    rng = random.Random(99)
    drawn = rng.choices(range(3), weights=p, k=trials)
    assert abs(drawn.count(draft) / trials - p[draft]) < 0.015
    rule = Counter(accept_draft(p, draft, rng)[0] for _ in range(trials))
    for token in range(3):
        assert abs(drawn.count(token) / trials - rule[token] / trials) < 0.02


@pytest.fixture(scope="module")
def small_engine(default_model):
    """Flash attention, and a context under 512 tokens: there llama.cpp computes one token's
    attention with the kernel a batch uses (see docs/speculation.md)."""
    return Engine(default_model, n_ctx=256, flash_attn=True)


def _fresh(engine: Engine, mode: str) -> None:
    engine.speculate = mode
    engine._llm.n_tokens = 0  # the prompt evaluated the same way each time


def _chat(engine: Engine, prompt: str) -> list[int]:
    return engine.tokenize(f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n",
                           start=True)


@pytest.mark.parametrize("sampling", [GREEDY, Sampling(temperature=0.8, seed=5)],
                         ids=["greedy", "sampled"])
def test_same_tokens_with_and_without_lookup(small_engine, sampling):
    engine = small_engine
    accepted = 0
    for prompt in PROMPTS:
        context = _chat(engine, prompt)
        _fresh(engine, "off")
        off = engine.generate(context, sampling, max_tokens=180)
        _fresh(engine, "lookup")
        before = engine.stats.accepted
        on = engine.generate(context, sampling, max_tokens=180)
        accepted += engine.stats.accepted - before
        assert on.tokens == off.tokens and on.text == off.text and on.stop == off.stop
    if sampling is GREEDY:
        assert accepted > 0  # guesses were kept: the comparison was not vacuous


def test_hooks_see_every_token_with_lookup(small_engine):
    """may_end, on_text, should_stop and max_tokens act token by token over accepted guesses,
    and the KV cache keeps only the tokens that were kept."""
    engine = small_engine
    context = _chat(engine, PROMPTS[0])
    runs = {}
    for mode in ("off", "lookup"):
        _fresh(engine, mode)
        seen: list[str] = []
        result = engine.generate(context, GREEDY, max_tokens=150, on_text=seen.append,
                                 may_end=lambda seen=seen: len(seen) > 40,
                                 should_stop=lambda seen=seen: "".join(seen).count(".") >= 4)
        assert result.text == "".join(seen)
        held = list(engine._llm.eval_tokens)
        assert held == (context + result.tokens)[:len(held)]
        assert len(context) + len(result.tokens) - 1 <= len(held)
        runs[mode] = result
        _fresh(engine, mode)
        capped = engine.generate(context, GREEDY, max_tokens=37)
        assert len(capped.tokens) == 37 and capped.stop == "length"
    assert runs["lookup"].tokens == runs["off"].tokens and runs["off"].stop == "stopped"


def test_next_turn_reuses_the_cache_after_lookup(small_engine):
    engine = small_engine
    _fresh(engine, "lookup")
    first = _chat(engine, PROMPTS[1])
    reply = engine.generate(first, GREEDY, max_tokens=60)
    turn = engine.tokenize("<|im_end|>\n<|im_start|>user\nAnd the months?<|im_end|>\n"
                           "<|im_start|>assistant\n")
    before = engine.stats.prompt_tokens_evaluated
    engine.generate(first + reply.tokens + turn, GREEDY, max_tokens=4)
    assert len(turn) <= engine.stats.prompt_tokens_evaluated - before <= len(turn) + 1


def test_no_lookup_under_a_grammar(small_engine):
    engine = small_engine
    _fresh(engine, "lookup")
    before = engine.stats.drafted
    schema = {"type": "object", "properties": {"days": {"type": "array", "items": {
        "type": "string", "maxLength": 12}, "maxItems": 7}}, "required": ["days"]}
    engine.generate(_chat(engine, PROMPTS[1]), GREEDY, max_tokens=80, json_schema=schema)
    assert engine.stats.drafted == before


def test_lookup_needs_flash_attention(engine):
    with pytest.raises(SettingError, match="flash_attn"):
        engine.speculate = "lookup"
    with pytest.raises(SettingError, match="choose one of off, lookup"):
        engine.speculate = "draft"
    assert engine.speculate == "off"
