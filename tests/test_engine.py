"""The engine on the default model: KV-cache reuse, stopping, cancelling."""

import threading

from lwlocal.runtime.engine import Sampling

GREEDY = Sampling(temperature=0.0)


def test_second_turn_evaluates_only_new_tokens(engine, default_model):
    from lwlocal.families.prompt_format import FORMATS

    fmt = FORMATS["chatml"]
    first = engine.tokenize(fmt.first_turn("Name three colours."), start=True)
    before = engine.stats.prompt_tokens_evaluated
    reply = engine.generate(first, GREEDY, max_tokens=24)
    assert reply.tokens and reply.text
    assert engine.stats.prompt_tokens_evaluated - before == len(first)

    turn = engine.tokenize(fmt.next_turn("Now three animals."))
    second = first + reply.tokens + turn
    before = engine.stats.prompt_tokens_evaluated
    engine.generate(second, GREEDY, max_tokens=8)
    evaluated = engine.stats.prompt_tokens_evaluated - before
    # the new turn, plus at most the last reply token (sampled but never fed back)
    assert len(turn) <= evaluated <= len(turn) + 1
    assert engine.stats.context_tokens <= len(second) + 8


def test_same_seed_same_text_and_greedy_is_deterministic(engine):
    context = engine.tokenize("<|im_start|>user\nTell a story.<|im_end|>\n<|im_start|>assistant\n",
                              start=True)
    a = engine.generate(context, Sampling(seed=7), max_tokens=20).text
    engine.generate(engine.tokenize("Unrelated text to disturb the cache"), GREEDY, max_tokens=4)
    b = engine.generate(context, Sampling(seed=7), max_tokens=20).text
    assert a == b


def test_stop_callback_and_cancel(engine):
    context = engine.tokenize("<|im_start|>user\nWrite a long essay about rivers.<|im_end|>\n"
                              "<|im_start|>assistant\n", start=True)
    seen: list[str] = []
    stopped = engine.generate(context, GREEDY, max_tokens=200, on_text=seen.append,
                              should_stop=lambda: len("".join(seen)) > 30)
    assert stopped.stop == "stopped" and len(stopped.text) > 30
    assert stopped.text == "".join(seen)

    cancel = threading.Event()
    cancel.set()
    cancelled = engine.generate(context, GREEDY, max_tokens=200, cancel=cancel)
    assert cancelled.stop == "cancelled" and not cancelled.tokens  # stopped before sampling


def test_a_grammar_is_asked_about_the_chains_pick_alone_where_it_allows_it(engine,
                                                                            monkeypatch):
    """A reply under a JSON schema holds to it. The chain's pick is checked alone, and only a
    pick the grammar refuses has the grammar applied to every candidate (llama.cpp's common
    sampler): most tokens of a JSON reply cost one candidate's check."""
    import json

    from lwlocal.runtime.sampler import Sampler

    picks: list[bool] = []  # each pick: with the grammar applied to every candidate or not
    pick = Sampler._pick

    def counted(self, logits, *, grammar_first):
        picks.append(grammar_first)
        return pick(self, logits, grammar_first=grammar_first)

    monkeypatch.setattr(Sampler, "_pick", counted)
    context = engine.tokenize("<|im_start|>user\nGive a name and an age.<|im_end|>\n"
                              "<|im_start|>assistant\n", start=True)
    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20},
                                               "age": {"type": "integer"}},
              "required": ["name", "age"]}
    result = engine.generate(context, Sampling(seed=1), max_tokens=60, json_schema=schema)
    assert set(json.loads(result.text)) == {"name", "age"}
    refused = picks.count(True)
    assert picks.count(False) == len(result.tokens) + (result.stop == "eog")
    assert 0 < refused < len(picks) / 4  # the reply's opening brace: not the model's own pick


def test_a_json_reply_ends_when_its_value_does_whatever_may_end_says(engine):
    """Under a JSON schema the value decides where the reply ends: a reply that may not end
    yet (``min_tokens``, ``ignore_eos`` through ``lwlocal serve``) still ends there, rather
    than leaving the grammar nothing to accept (llama.cpp aborts the process)."""
    import json

    context = engine.tokenize("<|im_start|>user\nGive a number.<|im_end|>\n"
                              "<|im_start|>assistant\n", start=True)
    schema = {"type": "object", "properties": {"n": {"type": "integer", "maximum": 9}},
              "required": ["n"], "additionalProperties": False}
    result = engine.generate(context, Sampling(seed=3), max_tokens=40, json_schema=schema,
                             may_end=lambda: False)
    assert result.stop == "eog" and set(json.loads(result.text)) == {"n"}


LOOPING = ("<|im_start|>user\nWrite a long essay about rivers.<|im_end|>\n<|im_start|>assistant\n"
           + "Rivers carry water to the sea. " * 4)


def test_dry_breaks_a_loop_the_context_started(engine):
    """DRY (as llama-server's dry_* fields) looks back over the context too: greedy decoding
    goes on with the loop without it and leaves it with it."""
    context = engine.tokenize(LOOPING.rstrip(), start=True)
    plain = Sampling(temperature=0.0, repeat_penalty=1.0, dry_multiplier=0.0)
    looped = engine.generate(context, plain, max_tokens=40).text
    assert looped.count("Rivers carry water to the sea") >= 3
    dry = Sampling(temperature=0.0, repeat_penalty=1.0)  # the default DRY
    broken = engine.generate(context, dry, max_tokens=40).text
    assert broken.count("Rivers carry water to the sea") == 0


def test_a_reply_can_be_kept_from_a_start(engine):
    """``avoid_first``: the first token is none of them; after it, sampling as usual."""
    context = engine.tokenize(LOOPING.rstrip(), start=True)
    plain = Sampling(temperature=0.0, repeat_penalty=1.0, dry_multiplier=0.0)
    first = engine.generate(context, plain, max_tokens=3).tokens
    other = engine.generate(context, plain, max_tokens=3, avoid_first=first[:1]).tokens
    assert other[0] != first[0]
    again = engine.generate(context, plain, max_tokens=3, avoid_first=first[1:2]).tokens
    assert again == first  # a token other than the first one is not touched


def test_prompts_are_evaluated_on_the_threads_given(default_model):
    """--threads holds for prompt evaluation too (llama-cpp-python's own default for it is
    every logical CPU: two processes of a two-core machine's test suite spun against each
    other, and a user's --threads 4 evaluated prompts on all of a laptop's cores)."""
    from lwlocal.runtime.llama_context import load_llama

    llm = load_llama(default_model, n_ctx=256, n_batch=64, n_threads=1, flash_attn=True,
                     kv_type="f16", n_gpu_layers=0)
    try:
        assert (llm.context_params.n_threads, llm.context_params.n_threads_batch) == (1, 1)
    finally:
        llm.close()


def test_a_moved_window_holds_the_shorter_conversation_without_evaluating_it(engine):
    """The writer's window on a full context: the oldest turns leave the KV cache and the rest
    moves back in place (llama.cpp's KV shift); the next reply evaluates only its request. A
    conversation that is not the first less one stretch is refused, the cache untouched."""
    from lwlocal.families.prompt_format import FORMATS
    from lwlocal.runtime.chat import LocalChat, Message

    chat = LocalChat(engine, FORMATS["chatml"])
    plan = "The plan: 1. Rivers 2. Lakes 3. Seas.\n\n"
    texts = ["Rivers run from hills to the sea. " * 4, "Lakes are still water held by land. " * 4]
    old = [Message("user", plan + "Now write part 1, Rivers."), Message("assistant", texts[0]),
           Message("user", "Now write part 2, Lakes."), Message("assistant", texts[1]),
           Message("user", "Now write part 3, Seas.")]
    new = [Message("user", plan + "Now write part 2, Lakes."), *old[3:]]
    request = len(engine.tokenize(chat.format.next_turn(old[-1].content)))
    engine.generate(chat.render(old[:3]), GREEDY, max_tokens=4)  # the cache holds a part
    moves, evaluated = engine.stats.window_moves, engine.stats.prompt_tokens_evaluated

    assert chat.move_window(old, new)
    assert engine.stats.window_moves == moves + 1
    assert engine.stats.context_tokens == len(chat.render(new)) - request
    # what the cache lacked of the whole conversation was evaluated; nothing of the kept part
    assert engine.stats.prompt_tokens_evaluated - evaluated <= len(chat.render(old)) - request
    evaluated = engine.stats.prompt_tokens_evaluated
    reply = chat.complete(new, GREEDY, max_tokens=16)
    assert reply.text.strip()
    assert engine.stats.prompt_tokens_evaluated - evaluated == request

    held = engine.stats.context_tokens
    other = [Message("user", plan + "Now write part 2, Lakes."), Message("assistant", "Other."),
             Message("user", "Now write part 3, Seas.")]
    assert not chat.move_window(new, other)  # not the first less a stretch
    assert not chat.move_window(new, new[-1:])  # the request alone: nothing to move
    assert engine.stats.window_moves == moves + 1 and engine.stats.context_tokens == held


def test_a_reply_in_the_models_own_tokens_is_handed_back_without_evaluating_it_again(engine):
    """A reply the model spelled in other tokens than its tokenizer gives for the text ("w",
    "ater" for "water") is evaluated again from there when handed back as text; handed back in
    the tokens the KV cache holds for it (``reply_tokens``), the next request evaluates only
    its own turn. Where the text was changed after it was written, its tokens go as far as
    they spell it, from a whole character on the rest is tokenized."""
    from lwlocal.families.prompt_format import FORMATS
    from lwlocal.runtime.chat import LocalChat, Message

    chat = LocalChat(engine, FORMATS["chatml"])
    ask, follow = [Message("user", "Say a word.")], Message("user", "Another.")
    byte = {engine.token_bytes(t): t for t in range(1000)}  # the single-byte tokens
    odd = [*engine.tokenize("w"), *engine.tokenize("ater"), *engine.tokenize(" caf"),
           byte[b"\xc3"], byte[b"\xa9"]]  # "water café", é byte by byte
    assert odd[:2] != engine.tokenize("water")  # not how the tokenizer spells it
    engine.generate(chat.render(ask) + odd, GREEDY, max_tokens=1)  # the cache holds them
    kept = chat.reply_tokens(ask, "water café")
    assert kept == tuple(odd)

    for tokens, again in ((kept, 0), (None, len(engine.tokenize("water café")))):
        engine.generate(chat.render(ask) + odd, GREEDY, max_tokens=1)
        evaluated = engine.stats.prompt_tokens_evaluated
        engine.generate(chat.render([*ask, Message("assistant", "water café", tokens), follow]),
                        GREEDY, max_tokens=1)
        request = len(engine.tokenize(chat.format.next_turn(follow.content)))
        # the new turn (and a token sampled but never fed back), or the reply as text too
        assert engine.stats.prompt_tokens_evaluated - evaluated - request in (again, again + 1)

    engine.generate(chat.render(ask) + odd, GREEDY, max_tokens=1)
    changed = chat.reply_tokens(ask, "water cafè")  # è: the same first byte as é
    assert changed == (*odd[:3], *engine.tokenize("è"))  # not from the middle of a character
    assert chat.reply_tokens([Message("user", "Something else.")], "water") is None
    past = (engine.n_vocab,)  # a kept token no vocabulary has: the text is tokenized instead
    assert chat.render([*ask, Message("assistant", "water", past), follow]) == chat.render(
        [*ask, Message("assistant", "water"), follow])
