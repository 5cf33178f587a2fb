"""Speculation: the lookup, the draft length, the acceptance rule, and the engine giving the
tokens it gives without speculation, guessing by lookup or with a draft model."""

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
    check_speculate,
)
from lwlocal.util.errors import SettingError

GREEDY = Sampling(temperature=0.0)
OUTLINE = "\n".join(
    f"{i}. {title}: {point} (about 300 words)" for i, (title, point) in enumerate([
        ("The draisine", "Karl Drais's running machine of 1817 and how riders pushed it"),
        ("The velocipede", "pedals on the front wheel, the boneshaker of 1860s France"),
        ("The high-wheeler", "the penny-farthing, its speed and its dangerous falls"),
        ("The safety bicycle", "chain drive and two equal wheels in the 1880s"),
        ("The bicycle boom", "cycling clubs, women's freedom and the roads of the 1890s"),
        ("Modern e-bikes", "batteries, motors and the bicycle in cities today"),
    ], 1))
# a writer's request (past 256 tokens, where llama.cpp's one-token attention over an f16 cache
# would be split across threads), and a list; the answers repeat phrases, so guesses are kept
PROMPTS = (
    "Here is the plan of a history of the bicycle, section by section.\n\n" + OUTLINE
    + "\n\nNow write section 1 of 6, \"The draisine\", in about 300 words of plain prose: "
    "Karl Drais's running machine of 1817 and how riders pushed it. Then restate the plan.",
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


def test_draft_length_gives_up_after_its_pauses():
    """A draft model's: after two pauses in a row, no guess for the rest of the request; a guess
    kept between pauses starts the count again."""
    length = DraftLength(pauses=2)

    def miss_until_paused() -> int:
        for _ in range(MISSES_BEFORE_PAUSE):
            length.update(1, 0)
        return sum(1 for _ in range(10_000) if length.next() == 0 and length.k)

    assert miss_until_paused() == PAUSE_TOKENS
    length.update(2, 1)  # something kept: the pauses count again
    assert miss_until_paused() == PAUSE_TOKENS
    assert length.next() == 1
    assert miss_until_paused() == 2 * PAUSE_TOKENS
    assert miss_until_paused() == 10_000  # and then for good


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
def small_engine(default_model, draft_gguf):
    """Flash attention and a q8_0 KV cache, which speculation needs (see check_speculate), and
    a draft model loaded."""
    return Engine(default_model, n_ctx=1024, flash_attn=True, kv_type="q8_0",
                  speculate="draft", draft_model=draft_gguf)


def _fresh(engine: Engine, mode: str) -> None:
    """Speculate with ``mode`` from here; a prompt the KV cache holds is not evaluated again
    but its last token (alone: in this batch-invariant cache, the logits a whole prefill gives,
    test_a_batch_gives_the_logits_of_one_token_at_a_time)."""
    engine.speculate = mode


def _chat(engine: Engine, prompt: str) -> list[int]:
    return engine.tokenize(f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n",
                           start=True)


def test_a_batch_gives_the_logits_of_one_token_at_a_time(small_engine):
    """What exactness rests on: past 256 tokens of context (where an f16 cache's one-token
    attention would be split across threads), a verifying batch's logits are bit-identical to
    those of the same tokens decoded one by one."""
    import llama_cpp
    import numpy as np

    engine = small_engine
    engine.speculate = "off"
    llm = engine._llm
    context, batch = _chat(engine, PROMPTS[0]), engine.tokenize(
        " The draisine of 1817 was a running machine")[:DRAFT_CAP + 1]
    assert len(context) > 256 and len(batch) == DRAFT_CAP + 1
    n_vocab = llama_cpp.llama_vocab_n_tokens(engine._vocab)

    def logits(row: int) -> np.ndarray:
        return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, row),
                                     shape=(n_vocab,)).copy()

    llm.n_tokens = 0
    llm.eval(context)
    one_by_one = []
    for token in batch:
        llm.eval([token])
        one_by_one.append(logits(-1))
    llm.n_tokens = len(context)
    engine._speculator.verify(batch[0], batch[1:])
    for row, expected in enumerate(one_by_one):
        assert np.array_equal(logits(row), expected), row
    llm.n_tokens = 0


@pytest.mark.parametrize("sampling", [GREEDY, Sampling(temperature=0.8, seed=5)],
                         ids=["greedy", "sampled"])
def test_same_tokens_with_and_without_speculation(small_engine, sampling):
    """Lookup and the draft model each write what no speculation writes."""
    engine = small_engine
    accepted = dict.fromkeys(("lookup", "draft"), 0)
    for prompt in PROMPTS:
        context = _chat(engine, prompt)
        _fresh(engine, "off")
        off = engine.generate(context, sampling, max_tokens=120)
        for mode in accepted:
            _fresh(engine, mode)
            before = engine.stats.accepted
            on = engine.generate(context, sampling, max_tokens=120)
            accepted[mode] += engine.stats.accepted - before
            assert (on.tokens, on.text, on.stop) == (off.tokens, off.text, off.stop), mode
    if sampling is GREEDY:  # guesses were kept: the comparison was not vacuous
        assert all(accepted.values()), accepted


def test_hooks_see_every_token_with_speculation(small_engine):
    """may_end, on_text, should_stop and max_tokens act token by token over accepted guesses,
    and the KV cache keeps only the tokens that were kept."""
    engine = small_engine
    context = _chat(engine, PROMPTS[0])
    runs = {}
    for mode in ("off", "lookup", "draft"):
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
    assert runs["lookup"].tokens == runs["draft"].tokens == runs["off"].tokens
    assert runs["off"].stop == "stopped"


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


def test_lookup_needs_flash_attention_and_a_quantized_cache(engine):
    with pytest.raises(SettingError, match="flash_attn"):
        engine.speculate = "lookup"  # the session's engine: flash attention off
    with pytest.raises(SettingError, match="choose one of off, lookup, draft"):
        engine.speculate = "medusa"
    assert engine.speculate == "off"
    with pytest.raises(SettingError, match="needs a quantized kv_type"):
        check_speculate("lookup", True, "f16")
    check_speculate("lookup", None, None)  # the planner's choices: flash attention, q8_0
    check_speculate("lookup", True, "q4_0")
    check_speculate("off", False, "f16")


def test_draft_needs_a_model_and_a_model_needs_draft(default_model):
    with pytest.raises(SettingError, match="speculate draft MODEL"):
        check_speculate("draft", True, "q8_0")
    with pytest.raises(SettingError, match="draft_model d.gguf: a draft model is for speculate"):
        check_speculate("lookup", True, "q8_0", "d.gguf")
    with pytest.raises(SettingError, match="speculate draft MODEL"):
        Engine(default_model, n_ctx=256, flash_attn=True, kv_type="q8_0", speculate="draft")


def test_draft_shares_the_models_vocabulary(default_model, tiny_llama, tmp_path):
    from lwlocal.convert.run import convert

    other = convert(tiny_llama, tmp_path / "other.gguf").path
    with pytest.raises(SettingError, match=f"draft_model {other}: its vocabulary is not the "
                                           "model's .* tokens against 49152"):
        Engine(default_model, n_ctx=256, flash_attn=True, kv_type="q8_0", speculate="draft",
               draft_model=other)
