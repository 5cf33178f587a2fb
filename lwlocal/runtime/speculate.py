"""Speculation: guess the next tokens, by prompt lookup or with a draft model, and verify the
guesses in one batch (:class:`Speculator`, what the engine decodes a reply with).

Prompt lookup guesses from where the latest tokens appeared before. Long writing repeats itself:
a section restates its title and main point from the outline, names and phrases recur. After
each sampled token the engine looks up the longest recent n-gram (``NGRAM_MAX`` down to
``NGRAM_MIN`` tokens) in the conversation so far and proposes the tokens that followed its
latest earlier occurrence; the model verifies them all in one batch.

The draft is deterministic (its distribution q is one-hot), so the standard speculative rule
(accept the draft d with probability min(1, p(d)/q(d)) = p(d), else sample from p with d removed
and renormalised) gives each token with probability p exactly. Drawing x from p and accepting d
when x == d is the same law: d comes out with probability p(d), and any other y with probability
p(y) = (1 - p(d)) * p(y) / (1 - p(d)). The engine does the latter, through the llama.cpp sampler
chain that samples without speculation, so the tokens sampled are those it would sample without
it; :func:`accept_draft` is the rule written out, tested on its own.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence
from typing import Protocol

import llama_cpp
import llama_cpp._internals

from lwlocal.runtime.draft_model import DraftModel
from lwlocal.util.errors import SettingError

SPECULATE_MODES = ("off", "lookup", "draft")
NGRAM_MAX = 4  # the longest run of recent tokens looked up
NGRAM_MIN = 2  # the shortest: one token alone recurs too often to predict what follows
DRAFT_CAP = 8  # most tokens guessed at once
DRAFT_START = 2
MISSES_BEFORE_PAUSE = 4  # verifications in a row that accept nothing before drafting pauses
PAUSE_TOKENS = 16  # tokens decoded one at a time after the first pause; doubled on each next
PAUSE_CAP = 256
DRAFT_MODEL_PAUSES = 2  # pauses after which a draft model stops guessing for the request: it
# reads every token the model writes before it can guess again, which prompt lookup need not


def check_speculate(mode: str, flash_attn: bool | None = None, kv_type: str | None = None,
                    draft_model: object | None = None) -> None:
    """Refuse a speculation mode the engine does not have, a draft model without ``draft``
    (or ``draft`` without one), and speculation where llama.cpp would compute a batch of
    guesses with other kernels than one token at a time, so that the output would change:
    without flash attention, or over an f16 KV cache (whose one-token attention is split across
    threads once the cache passes 256 tokens). None: the planner's choice (flash attention on;
    a q8_0 cache when speculating)."""
    if mode not in SPECULATE_MODES:
        raise SettingError(f"{{speculate}} {mode!r}: choose one of {', '.join(SPECULATE_MODES)}")
    if mode == "draft" and draft_model is None:
        raise SettingError("{speculate} draft needs the draft model's GGUF (a small model with "
                           "the model's tokenizer): --speculate draft MODEL")
    if mode != "draft" and draft_model is not None:
        raise SettingError(f"{{draft_model}} {draft_model}: a draft model is for "
                           f"{{speculate}} draft, not {mode}")
    if mode == "off":
        return
    if flash_attn is False:
        raise SettingError(f"{{speculate}} {mode} needs {{flash_attn}} on (without it llama.cpp "
                           "computes a batch's attention with other kernels than one token's, "
                           "and the output would change)")
    if kv_type == "f16":
        raise SettingError(f"{{speculate}} {mode} needs a quantized {{kv_type}}, q8_0 or q4_0 "
                           "(llama.cpp splits one token's attention over an f16 cache across "
                           "threads, a batch's not, and the output would change)")


class Drafter(Protocol):
    """What guesses the next tokens of one request: told each token the model samples."""

    def append(self, token: int) -> None: ...

    def draft(self, k: int) -> list[int]: ...


class Lookup:
    """The conversation's tokens, with the latest position of each n-gram that has a token
    after it (so the n-gram that ends the history is found where it occurred *before*)."""

    def __init__(self, tokens: Sequence[int]) -> None:
        self.tokens: list[int] = []
        self._ends: dict[tuple[int, ...], int] = {}  # n-gram -> where its latest copy ends
        for token in tokens:
            self.append(token)

    def append(self, token: int) -> None:
        tokens = self.tokens
        tokens.append(token)
        last = len(tokens) - 2  # the n-grams ending here now have a next token
        for n in range(NGRAM_MIN, NGRAM_MAX + 1):
            if last + 1 < n:
                break
            self._ends[tuple(tokens[last + 1 - n:last + 1])] = last

    def draft(self, k: int) -> list[int]:
        """Up to ``k`` tokens that followed the longest n-gram ending the history, where it
        last occurred before; none when no n-gram of ``NGRAM_MIN`` tokens or more recurs."""
        tokens = self.tokens
        for n in range(min(NGRAM_MAX, len(tokens)), NGRAM_MIN - 1, -1):
            end = self._ends.get(tuple(tokens[-n:]))
            if end is not None:
                return tokens[end + 1:end + 1 + k]
        return []


class DraftLength:
    """How many tokens to guess next: more after a draft accepted whole, fewer after a miss,
    none for a while after ``MISSES_BEFORE_PAUSE`` verifications in a row that accepted
    nothing (a pause twice as long each time it happens again, until something is accepted),
    and none for the rest of the request after ``pauses`` such pauses in a row, when given."""

    def __init__(self, pauses: int | None = None) -> None:
        self.k = DRAFT_START
        self._misses = 0
        self._pause = PAUSE_TOKENS
        self._paused_for: float = 0
        self._pauses_max = math.inf if pauses is None else pauses
        self._pauses_left = self._pauses_max

    def next(self) -> int:
        """Tokens to guess after this token (0: decode it alone)."""
        if self._paused_for:
            self._paused_for -= 1
            return 0
        return self.k

    def update(self, drafted: int, accepted: int) -> None:
        if accepted == drafted:
            self.k = min(DRAFT_CAP, self.k * 2)
        else:
            self.k = max(1, accepted + 1)
        if accepted:
            self._misses, self._pause, self._pauses_left = 0, PAUSE_TOKENS, self._pauses_max
            return
        self._misses += 1
        if self._misses >= MISSES_BEFORE_PAUSE:
            self._misses = 0
            self._paused_for = self._pause if self._pauses_left else math.inf
            self._pauses_left -= 1
            self._pause = min(PAUSE_CAP, self._pause * 2)


def accept_draft(p: Sequence[float], draft: int, rng: random.Random) -> tuple[int, bool]:
    """The speculative rule for a deterministic draft: keep ``draft`` with probability
    ``p[draft]``, else a token drawn from ``p`` without it (renormalised). Returns the token
    and whether it is the draft; the token is distributed as ``p`` whatever the draft."""
    if rng.random() < p[draft]:
        return draft, True
    rest = [0.0 if i == draft else w for i, w in enumerate(p)]
    return rng.choices(range(len(p)), weights=rest)[0], False


class Counts(Protocol):
    """The counters speculation keeps up to date (the engine's ``Stats``)."""

    drafted: int
    accepted: int
    context_tokens: int


class Speculator:
    """How an engine's replies enter its context: each sampled token evaluated alone, or with
    the guesses after it in one batch, as the mode given to :meth:`start` says. ``row`` is where
    in the last batch evaluated the logits of the next token to sample are."""

    def __init__(self, llm: llama_cpp.Llama, draft: DraftModel | None) -> None:
        self._llm, self._draft = llm, draft
        # a token and the guesses after it, each with its logits (freed with the engine)
        self._batch = llama_cpp._internals.LlamaBatch(n_tokens=DRAFT_CAP + 1, embd=0,
                                                      n_seq_max=1, verbose=False)
        self.batches: Counter[int] = Counter()  # batches verified, by size

    def start(self, mode: str, context: Sequence[int], counts: Counts) -> None:
        """Begin a reply after ``context`` (evaluated), guessing as ``mode`` says (``off``:
        not at all), counting into ``counts``."""
        self._counts, self.row = counts, -1
        self._drafts: list[int] = []  # guesses evaluated after the last token, not yet checked
        self._length = DraftLength(DRAFT_MODEL_PAUSES if mode == "draft" else None)
        self._drafter: Drafter | None = None
        if mode == "lookup":
            self._drafter = Lookup(context)
        elif mode == "draft" and self._draft is not None:
            self._drafter = self._draft.follow(context)

    def advance(self, token: int, room: int) -> None:
        """Put the sampled ``token`` in the context: kept from the guesses when it is the next
        one (its logits are computed), else evaluated with at most ``room`` new guesses."""
        llm, counts = self._llm, self._counts
        if self._drafter is None:
            llm.eval([token])
            counts.context_tokens = llm.n_tokens
            return
        self._drafter.append(token)
        drafts = self._drafts
        if drafts and drafts[0] == token:  # guessed right: its logits are computed
            drafts.pop(0)
            llm.n_tokens += 1
            counts.accepted += 1
            self.row += 1
            if not drafts:
                self._length.update(self.row, self.row)
            return
        if drafts:
            self._length.update(self.row + len(drafts), self.row)
        k = min(self._length.next(), room)
        self._drafts = self._drafter.draft(k) if k > 0 else []
        self.row = self.verify(token, self._drafts)
        counts.drafted += len(self._drafts)
        counts.context_tokens = llm.n_tokens

    def verify(self, token: int, drafts: list[int]) -> int:
        """Evaluate ``token``, and the guesses after it in the same batch with logits for
        each; the row of ``token``'s logits. Only ``token`` counts as evaluated
        (``n_tokens``) until a guess is accepted; the KV cache past it is dropped first."""
        llm = self._llm
        self.batches[1 + len(drafts)] += 1
        if not drafts:
            llm.eval([token])
            return -1
        assert len(drafts) <= DRAFT_CAP, "the verifying batch holds DRAFT_CAP + 1 tokens"
        tokens, n_past = [token, *drafts], llm.n_tokens
        llm._ctx.kv_cache_seq_rm(-1, n_past, -1)
        self._batch.set_batch(tokens, n_past=n_past, logits_all=True)
        llm._ctx.decode(self._batch)
        llm.input_ids[n_past:n_past + len(tokens)] = tokens
        llm.n_tokens = n_past + 1
        return 0
