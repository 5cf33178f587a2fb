"""One llama.cpp session that keeps its token history and reuses its KV cache across requests."""

from __future__ import annotations

import codecs
import ctypes
import math
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import llama_cpp
import llama_cpp._logger

from lwlocal.models.gguf_checks import check_vocabulary
from lwlocal.runtime.draft_model import DraftModel
from lwlocal.runtime.grammar import json_grammar
from lwlocal.runtime.llama_context import common_prefix, load_llama, reusable_prefix
from lwlocal.runtime.llama_log import loading
from lwlocal.runtime.sampler import Sampler
from lwlocal.runtime.speculate import Speculator, check_speculate
from lwlocal.util.errors import LwlocalError, SettingError
from lwlocal.util.interrupt import held

PENALTY_LAST_N = 64  # tokens the repetition penalty looks back over (llama.cpp's default)
DRY_BREAKERS = ("\n", ":", "\"", "*")  # where DRY's repeated runs break (llama.cpp's default)


@dataclass(frozen=True)
class Sampling:
    """Sampling settings of one request."""

    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    seed: int = 42
    # DRY ("don't repeat yourself"), as llama.cpp's sampler and llama-server's dry_* fields:
    # a token that would extend a run of more than ``dry_allowed_length`` tokens seen in the
    # last ``dry_penalty_last_n`` tokens (prompt included) is penalised by
    # multiplier * base ^ (run - allowed); 0 turns it off
    dry_multiplier: float = 0.8
    dry_base: float = 1.75
    dry_allowed_length: int = 2
    dry_penalty_last_n: int = 4096


# what each sampling setting may be (llama.cpp takes anything, NaN included)
SAMPLING_RULES: dict[str, tuple[Callable[[float], bool], str]] = {
    "temperature": (lambda v: v >= 0, "0 (greedy) or more"),
    "top_p": (lambda v: 0 <= v <= 1, "between 0 and 1"),
    "min_p": (lambda v: 0 <= v <= 1, "between 0 and 1"),
    "repeat_penalty": (lambda v: v > 0, "above 0"),
    "dry_multiplier": (lambda v: v >= 0, "0 (off) or more"),
    "dry_base": (lambda v: v >= 1, "1 or more"),
    "dry_allowed_length": (lambda v: v >= 1 and v == int(v), "a whole number, 1 or more"),
    "dry_penalty_last_n": (lambda v: v >= 0 and v == int(v), "a whole number, 0 (off) or more"),
    "top_k": (lambda v: v >= 0 and v == int(v), "a whole number, 0 (off) or more"),
    "seed": (lambda v: v == int(v), "a whole number"),
}


def check_sampling(sampling: Sampling) -> None:
    """Refuse sampling settings that mean nothing: NaN or infinite values, a negative
    temperature, a top-p outside 0-1."""
    for name, (allowed, rule) in SAMPLING_RULES.items():
        value = getattr(sampling, name)
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not (number and (isinstance(value, int) or math.isfinite(value)) and allowed(value)):
            raise SettingError(f"{{{name}}} {value}: must be a finite number, {rule}")


@dataclass
class Stats:
    """Counters over a backend's life: prompt tokens sent (``prompt_tokens``), found in the KV
    cache (``cached_prompt_tokens``) and evaluated, tokens generated, and how fast."""

    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    prompt_tokens_evaluated: int = 0
    generated_tokens: int = 0
    prefill_seconds: float = 0.0
    decode_seconds: float = 0.0
    context_tokens: int = 0
    requests: int = 0
    drafted: int = 0  # tokens guessed by speculation, evaluated in a verifying batch
    accepted: int = 0  # of those, the ones the model sampled too
    window_moves: int = 0  # stretches left out of the KV cache, what followed moved back

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.drafted if self.drafted else 0.0

    @property
    def prefill_tokens_per_s(self) -> float:
        return self.prompt_tokens_evaluated / self.prefill_seconds if self.prefill_seconds else 0.0

    @property
    def decode_tokens_per_s(self) -> float:
        return self.generated_tokens / self.decode_seconds if self.decode_seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["prefill_tokens_per_s"] = round(self.prefill_tokens_per_s, 2)
        out["decode_tokens_per_s"] = round(self.decode_tokens_per_s, 2)
        out["acceptance_rate"] = round(self.acceptance_rate, 3)
        return out


@dataclass
class Generation:
    """The result of one request: the tokens produced (end-of-turn excluded), their text, why
    it stopped (``eog``, ``length``, ``stopped``, ``cancelled``)."""

    tokens: list[int] = field(default_factory=list)
    text: str = ""
    stop: str = ""


def count_tokens(path: Path, text: str) -> int:
    """Tokens the model's own tokenizer makes of ``text``, loading its vocabulary only (through
    llama.cpp's C API: ``llama_cpp.Llama`` would also decode the special tokens' text and
    compile the chat template, which a damaged file can fail in many ways)."""
    check_vocabulary(path)
    llama_cpp.llama_backend_init()
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    with held(), loading():  # nothing redirected: llama.cpp's log goes to log_path()
        model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
    if not model:
        raise LwlocalError(f"{path}: llama.cpp could not load its vocabulary")
    try:
        data = text.encode()
        # with no room for tokens, llama_tokenize returns minus the number it would write
        return -llama_cpp.llama_tokenize(llama_cpp.llama_model_get_vocab(model), data,
                                         len(data), None, 0, False, False)
    finally:
        llama_cpp.llama_model_free(model)


class Engine:
    """A loaded GGUF model with one context.

    ``generate`` takes the *whole* conversation as tokens; only the part that is not already in
    the KV cache is evaluated. With ``speculate="lookup"`` it guesses the next tokens from the
    conversation, with ``"draft"`` it has ``draft_model`` guess them, and verifies them in one
    batch (see :mod:`lwlocal.runtime.speculate` and :mod:`lwlocal.runtime.draft_model`).
    """

    def __init__(
        self,
        path: Path,
        *,
        n_ctx: int = 4096,
        n_batch: int = 512,
        n_threads: int | None = None,
        flash_attn: bool = False,
        kv_type: str = "f16",
        n_gpu_layers: int = 0,
        speculate: str = "off",
        draft_model: Path | None = None,
    ) -> None:
        self._flash_attn, self._kv_type, self._draft_path = flash_attn, kv_type, draft_model
        check_speculate(speculate, flash_attn, kv_type, draft_model)
        self._llm = load_llama(path, n_ctx=n_ctx, n_batch=n_batch, n_threads=n_threads,
                               flash_attn=flash_attn, kv_type=kv_type, n_gpu_layers=n_gpu_layers)
        draft = None if draft_model is None else DraftModel(
            draft_model, self._llm, n_threads=n_threads, flash_attn=flash_attn,
            on_gpu=n_gpu_layers > 0)
        self._speculator = Speculator(self._llm, draft)
        self.speculate = speculate
        self._vocab = llama_cpp.llama_model_get_vocab(self._llm.model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
        self._end_tokens = [t for t in range(self.n_vocab) if self.is_end_of_turn(t)]
        self.stats = Stats()
        self.model_key = f"{path.name} {path.stat().st_size}"  # what a job's kept tokens are of
        # the last request's context and the tokens generated after it, evaluated or not (the
        # last one of a reply is not, where one token at a time stops; a guess verified with
        # it may be): what the model wrote, the same whatever the speculation
        self.produced: list[int] = []

    @property
    def speculate(self) -> str:
        """``off``; ``lookup``: guess tokens from the conversation, or ``draft``: have the
        draft model (loaded with the engine) guess them; verified in one batch (with flash
        attention and a quantized KV cache: see :func:`check_speculate`)."""
        return self._speculate

    @speculate.setter
    def speculate(self, mode: str) -> None:
        check_speculate(mode, self._flash_attn, self._kv_type,
                        self._draft_path if mode == "draft" else None)
        self._speculate = mode

    @property
    def n_ctx(self) -> int:
        return self._llm.n_ctx()

    @property
    def n_ctx_train(self) -> int:
        return llama_cpp.llama_model_n_ctx_train(self._llm.model)

    def tokenize(self, text: str, *, start: bool = False) -> list[int]:
        """Tokens of ``text``; special tokens are parsed, BOS added only when ``start``."""
        return self._llm.tokenize(text.encode(), add_bos=start, special=True)

    def token_bytes(self, token: int) -> bytes:
        """The bytes token ``token`` stands for in a text (as the writer streams them)."""
        return bytes(self._llm.detokenize([token]))

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self._llm.detokenize(list(tokens)).decode("utf-8", errors="replace")

    def is_end_of_turn(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))

    def _grammar_step(self, grammar: str) -> Any:
        """A sampler that holds replies to ``grammar``; a one-line error where llama.cpp cannot
        parse it (it refuses too many repetitions of complex rules, and left recursion)."""
        step = llama_cpp.llama_sampler_init_grammar(self._vocab, grammar.encode(), b"root")
        if not step:
            raise LwlocalError("llama.cpp cannot parse the JSON schema's grammar (too many "
                               "repetitions, or a rule that refers to itself first)")
        return step

    def check_grammar(self, grammar: str) -> None:
        """Refuse, before any work, a grammar that :meth:`generate` could not use."""
        llama_cpp.llama_sampler_free(self._grammar_step(grammar))

    def _sampler(self, sampling: Sampling, grammar: str | None,
                 context: Sequence[int], replied: int) -> Sampler:
        """A llama.cpp sampler chain: repetition penalty, DRY, top-k/p, min-p, temperature,
        with ``grammar`` checked (:class:`Sampler`). The penalty looks back over the reply (its
        last ``replied`` tokens of ``context`` and those generated); DRY over the last
        ``dry_penalty_last_n`` tokens of the context too, as llama-server's sampler does. Under
        a grammar (an outline's JSON) there is no DRY: its keys recur by design."""
        grammar_step = self._grammar_step(grammar) if grammar else None  # may refuse: first
        steps = []
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        penalties = llama_cpp.llama_sampler_init_penalties(
            llama_cpp.llama_vocab_n_tokens(self._vocab), PENALTY_LAST_N,
            sampling.repeat_penalty, 0.0, 0.0)
        for token in context[len(context) - replied:][-PENALTY_LAST_N:]:
            llama_cpp.llama_sampler_accept(penalties, token)
        steps.append(penalties)
        if sampling.dry_multiplier > 0 and sampling.dry_penalty_last_n > 0 and not grammar:
            dry = self._dry_step(sampling)
            for token in context[-sampling.dry_penalty_last_n:]:
                llama_cpp.llama_sampler_accept(dry, token)
            steps.append(dry)
        if sampling.temperature <= 0:
            steps.append(llama_cpp.llama_sampler_init_greedy())
        else:
            steps += [
                llama_cpp.llama_sampler_init_top_k(sampling.top_k),
                llama_cpp.llama_sampler_init_top_p(sampling.top_p, 1),
                llama_cpp.llama_sampler_init_min_p(sampling.min_p, 1),
                llama_cpp.llama_sampler_init_temp(sampling.temperature),
                llama_cpp.llama_sampler_init_dist(sampling.seed & 0xFFFFFFFF),
            ]
        for step in steps:
            llama_cpp.llama_sampler_chain_add(chain, step)
        return Sampler(chain, grammar_step, llama_cpp.llama_vocab_n_tokens(self._vocab))

    def _dry_step(self, sampling: Sampling) -> Any:
        breakers = (ctypes.c_char_p * len(DRY_BREAKERS))(*(b.encode() for b in DRY_BREAKERS))
        return llama_cpp.llama_sampler_init_dry(
            self._vocab, sampling.dry_multiplier, sampling.dry_base,
            sampling.dry_allowed_length, sampling.dry_penalty_last_n, breakers,
            len(DRY_BREAKERS))

    def _prefill(self, tokens: Sequence[int], on_prefill: Callable[[int, int], None] | None,
                 cancel: threading.Event | None) -> bool:
        """Evaluate the prompt's new ``tokens`` a batch at a time, reporting each; False when
        ``cancel`` was set before it was all evaluated."""
        step = max(1, self._llm.n_batch)
        for start in range(0, len(tokens), step):
            if cancel is not None and cancel.is_set():
                return False
            self._llm.eval(tokens[start:start + step])
            self.stats.context_tokens = self._llm.n_tokens
            if on_prefill is not None:
                on_prefill(min(start + step, len(tokens)), len(tokens))
        return True

    def move_window(self, old: Sequence[int], new: Sequence[int],
                    on_prefill: Callable[[int, int], None] | None = None,
                    cancel: threading.Event | None = None) -> bool:
        """Make the KV cache hold ``new``, which is ``old`` with one stretch left out (a
        conversation's oldest turns), without evaluating what follows the stretch again: the
        cache is made to hold ``old`` exactly (what it lacks evaluated), the stretch removed and
        what followed it moved back (llama.cpp's KV shift, as its own context shift does).

        What the cache holds is then a function of the two lists alone, whatever the cache held
        before, so a resumed job that moves its window at the same places holds what the
        uninterrupted job held (docs/reproducible.md). False, with nothing left out, where
        ``new`` is not ``old`` less one stretch with something after it, ``old`` does not fit
        the context, the model's positions cannot be moved, or ``cancel`` was set;
        ``on_prefill`` follows what is evaluated, as in :meth:`generate`."""
        start = common_prefix(old, new)
        kept = min(common_prefix(old[::-1], new[::-1]), len(new) - start)
        memory = llama_cpp.llama_get_memory(self._llm.ctx)
        if (kept == 0 or start + kept != len(new) or len(old) > self.n_ctx
                or not llama_cpp.llama_memory_can_shift(memory)):
            return False
        held = common_prefix(self._llm.input_ids[:self._llm.n_tokens].tolist(), old)
        self._llm.n_tokens = held
        self._llm._ctx.kv_cache_seq_rm(-1, held, -1)
        started = time.perf_counter()
        done = self._prefill(old[held:], on_prefill, cancel)
        self.stats.prefill_seconds += time.perf_counter() - started
        self.stats.prompt_tokens += self._llm.n_tokens  # as a request for it would count
        self.stats.cached_prompt_tokens += held
        self.stats.prompt_tokens_evaluated += self._llm.n_tokens - held
        cut = len(old) - kept
        if not done or not self._llm._ctx.kv_cache_seq_rm(0, start, cut):
            return False  # a memory that keeps no stretch apart refuses (the cache as it was)
        self._llm._ctx.kv_cache_seq_shift(0, cut, len(old), start - cut)
        self._llm.input_ids[start:len(new)] = old[cut:]
        self._llm.n_tokens = self.stats.context_tokens = len(new)
        self.stats.window_moves += 1
        return True

    @property
    def verify_batches(self) -> dict[int, int]:
        """Batches evaluated in replies with speculation, by size (the sampled token and the
        guesses after it), over the engine's life."""
        return dict(self._speculator.batches)

    def time_batches(self, context: Sequence[int], sizes: Sequence[int],
                     repeats: int) -> dict[int, float]:
        """Median seconds to evaluate a batch of each of ``sizes`` tokens with logits for
        every one, as speculation verifies a token and its guesses, after ``context`` (in the
        cache afterwards, and nothing past it)."""
        self._llm.n_tokens = 0
        self._prefill(context, None, None)
        base, counted = self._llm.n_tokens, self._speculator.batches.copy()
        batch = list(context[-max(sizes):])
        times: dict[int, list[float]] = {size: [] for size in sizes}
        for _ in range(repeats):
            for size in sizes:  # alternating: each size once per round
                self._llm.n_tokens = base
                started = time.perf_counter()
                self._speculator.verify(batch[0], batch[1:size])
                times[size].append(time.perf_counter() - started)
        self._llm.n_tokens = base
        self._llm._ctx.kv_cache_seq_rm(-1, base, -1)
        self._speculator.batches = counted  # what replies verified, not this
        return {size: statistics.median(t) for size, t in times.items()}

    def _forbid(self, row: int, tokens: Sequence[int]) -> None:
        """Make ``tokens`` impossible for the sample from the last batch's ``row``."""
        logits = llama_cpp.llama_get_logits_ith(self._llm.ctx, row)
        for token in tokens:
            logits[token] = -math.inf

    def generate(
        self,
        context: Sequence[int],
        sampling: Sampling,
        *,
        max_tokens: int,
        json_schema: dict[str, Any] | None = None,
        may_end: Callable[[], bool] | None = None,
        should_stop: Callable[[], bool] | None = None,
        on_text: Callable[[str], None] | None = None,
        on_prefill: Callable[[int, int], None] | None = None,
        cancel: threading.Event | None = None,
        avoid_first: Sequence[int] = (),
        replied: int = 0,
    ) -> Generation:
        """Continue ``context`` with up to ``max_tokens`` sampled tokens; its last ``replied``
        tokens are the reply's start, gone on with (the repetition penalty counts them).

        Stops at an end-of-turn token (never sampled while ``may_end()`` is false, but under
        ``json_schema``, whose value ends the reply once it is complete), at
        ``max_tokens``, at the end of the context window, when ``should_stop()`` is true after a
        token, or when ``cancel`` is set (between batches of the prompt, or after a token).
        ``on_prefill(done, total)`` follows the prompt's evaluation batch by batch; ``on_text``
        receives each new piece of text as it is produced, before ``should_stop`` is asked (so
        it can track what was written). The first token is none of ``avoid_first`` (a start
        that went wrong before). ``stats.context_tokens`` follows the context as it grows.
        """
        max_tokens = min(max_tokens, self._room(context))
        grammar = json_grammar(json_schema) if json_schema else None
        sampler = self._sampler(sampling, grammar, context, replied)
        result = Generation(stop="length")
        pieces: list[str] = []
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        started = time.perf_counter()
        first_token_at: float | None = None
        cached = self._count_request(context)
        speculator = self._speculator
        try:
            self._llm.n_tokens = cached  # eval() drops the KV cache past this point
            if not self._prefill(context[cached:], on_prefill, cancel):
                result.stop = "cancelled"
                return result
            # with a grammar, a guess could break it before it is checked
            speculator.start("off" if grammar else self.speculate, context, self.stats)
            while True:
                if may_end is not None and not may_end() and grammar is None:
                    self._forbid(speculator.row, self._end_tokens)
                if avoid_first and not result.tokens:
                    self._forbid(speculator.row, avoid_first)
                token = sampler.sample(self._llm.ctx, speculator.row)
                if first_token_at is None:
                    first_token_at = time.perf_counter()
                if self.is_end_of_turn(token):
                    result.stop = "eog"
                    break
                result.tokens.append(token)
                piece = decoder.decode(self._llm.detokenize([token]))
                pieces.append(piece)
                if on_text and piece:
                    on_text(piece)
                stop = _stop_reason(len(result.tokens), max_tokens, should_stop, cancel)
                if stop:
                    result.stop = stop
                    break
                speculator.advance(token, room=max_tokens - len(result.tokens) - 1)
        finally:
            sampler.close()
            self.produced = [*context, *result.tokens]
            result.text = "".join(pieces)
            self._report(result, started, first_token_at)
        return result

    def _room(self, context: Sequence[int]) -> int:
        """Tokens the context window has left after ``context``; an error where it has none."""
        if not context:
            raise ValueError("generate needs at least one context token")
        room = self.n_ctx - len(context)
        if room <= 0:
            raise SettingError(f"the conversation's {len(context)} tokens do not fit a context "
                               f"of {self.n_ctx}; use a larger {{n_ctx}}")
        return room

    def _count_request(self, context: Sequence[int]) -> int:
        """Count a request for ``context``; how many of its tokens the KV cache holds."""
        cached = reusable_prefix(self._llm, context)
        self.stats.prompt_tokens += len(context)
        self.stats.cached_prompt_tokens += cached
        self.stats.prompt_tokens_evaluated += len(context) - cached
        self.stats.requests += 1
        return cached

    def _report(self, result: Generation, started: float, first_token_at: float | None) -> None:
        """Close a request: guesses past what was accepted leave the KV cache, and the time to
        the first token and after it, the tokens generated and the context are counted."""
        self._llm._ctx.kv_cache_seq_rm(-1, self._llm.n_tokens, -1)
        finished = time.perf_counter()
        first_token_at = first_token_at or finished
        self.stats.prefill_seconds += first_token_at - started
        self.stats.decode_seconds += finished - first_token_at
        self.stats.generated_tokens += len(result.tokens)
        self.stats.context_tokens = self._llm.n_tokens


def _stop_reason(generated: int, max_tokens: int, should_stop: Callable[[], bool] | None,
                cancel: threading.Event | None) -> str | None:
    """Why a reply stops after its latest token (``length``, ``stopped``, ``cancelled``), or
    None while it goes on."""
    if generated >= max_tokens:
        return "length"
    if should_stop and should_stop():
        return "stopped"
    if cancel is not None and cancel.is_set():
        return "cancelled"
    return None
