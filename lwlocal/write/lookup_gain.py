"""Whether guessing by prompt lookup pays on this machine and model (``--speculate auto``).

Lookup guesses the tokens that followed the latest match of the last few tokens and verifies
them in one batch with the next token; a kept guess saves a token's step, a batch costs more
than one token. Both halves are measured, once per machine, build, threads and model file, and
kept in the lwlocal home:

- what lookup does on the model: the batches it evaluates (a token and its guesses, by size)
  over ``LOOKUP_TOKENS`` tokens of a writer's section request (the default sampling, seeded:
  the same on any run);
- what a batch of each of those sizes costs against one token, after ``VERIFY_DEPTH`` tokens
  of that request (the median of ``REPEATS``).

The predicted gain is the tokens written over the batches' cost in one-token steps; lookup is
chosen where it is at least ``MIN_GAIN``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lwlocal.families.prompt_format import PromptFormat
from lwlocal.memory.speed_probe import speed_key
from lwlocal.models.catalogue import ResolvedModel
from lwlocal.util.measurements import keep_entry, kept_entries
from lwlocal.util.paths import home
from lwlocal.write.outline import Outline, Section
from lwlocal.write.writer import SECTION_REQUEST, WRITE_INTRO

LOOKUP_TOKENS = 256
VERIFY_DEPTH = 900
REPEATS = 5
MIN_GAIN = 1.05  # below it, the gain is within what timing a CPU varies by
SAMPLE = Outline("Write a 3,000-word history of the bicycle.", 3000, [
    Section("The draisine", "Karl Drais's running machine of 1817", 500),
    Section("The velocipede", "pedals on the front wheel in 1860s France", 500),
    Section("The high-wheeler", "the penny-farthing and its dangers", 500),
    Section("The safety bicycle", "chain drive and equal wheels in the 1880s", 500),
    Section("The bicycle in the 20th century", "racing, commuting and the Tour de France", 500),
    Section("Modern e-bikes", "batteries, motors and the bicycle in cities today", 500),
])


def section_request(outline: Outline) -> str:
    """The writer's request for section 1 of ``outline``, as lwlocal's writer words it."""
    s = outline.sections[0]
    request = SECTION_REQUEST.format(index=1, count=len(outline.sections), title=s.title,
                                     main_point=s.main_point, words=s.words)
    return f"{WRITE_INTRO.format(prompt=outline.prompt, outline=outline.as_text())}\n\n{request}"


@dataclass(frozen=True)
class LookupGain:
    """Lookup's batches on a model and what each size costs against one token."""

    key: str  # the machine, build, threads and model file it holds for
    batches: dict[int, int]  # batch size (a token and its guesses) -> batches evaluated
    verify_vs_one: dict[int, float]  # batch size -> seconds against one token's
    tokens: int
    drafted: int
    accepted: int
    measured_at: str = ""
    seconds: float = 0.0  # what measuring took

    @property
    def gain(self) -> float:
        """Tokens written per one-token step's time, with lookup: every token but the last
        is evaluated, alone without it (the first comes from the prompt's logits)."""
        cost = sum(n * self.verify_vs_one[size] for size, n in self.batches.items())
        return (self.tokens - 1) / cost

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.drafted if self.drafted else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "gain": round(self.gain, 3),
                "acceptance_rate": round(self.acceptance_rate, 3)}


def gain_file() -> Path:
    return home() / "lookup_gain.json"


def gain_key(model: Path, threads: int) -> str:
    stat = model.stat()
    return f"{speed_key(threads)} | {model.name} {stat.st_size} {stat.st_mtime_ns}"


def kept_gain(model: Path, threads: int) -> LookupGain | None:
    """What was measured here for ``model`` with ``threads``, or None."""
    entry = kept_entries(gain_file()).get(gain_key(model, threads))
    if not isinstance(entry, dict):
        return None
    try:
        fields = {k: entry[k] for k in ("key", "tokens", "drafted", "accepted", "measured_at",
                                        "seconds")}
        kept = LookupGain(**fields,
                          batches={int(k): int(v) for k, v in entry["batches"].items()},
                          verify_vs_one={int(k): float(v)
                                         for k, v in entry["verify_vs_one"].items()})
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    whole = (kept.tokens > 1 and kept.batches and set(kept.batches) <= set(kept.verify_vs_one)
             and all(c > 0 for c in kept.verify_vs_one.values()))
    return kept if whole else None  # a file changed by hand: measured again


def measure_gain(model: Path, fmt: PromptFormat, threads: int, tokens: int = LOOKUP_TOKENS,
                 depth: int = VERIFY_DEPTH) -> LookupGain:
    """Measure lookup on ``model`` (laid out in ``fmt``) with ``threads`` over ``tokens``,
    batches timed after ``depth`` tokens, and keep it."""
    from lwlocal.memory.planner import KV_BATCH_INVARIANT
    from lwlocal.runtime.engine import Engine, Sampling

    started = time.perf_counter()
    engine = Engine(model, n_ctx=2048, n_threads=threads, flash_attn=True,
                    kv_type=KV_BATCH_INVARIANT[0], speculate="lookup")
    context = engine.tokenize(fmt.first_turn(section_request(SAMPLE)), start=True)
    engine.generate(context, Sampling(), max_tokens=tokens, may_end=lambda: False)
    batches = engine.verify_batches
    before = (context * (depth // len(context) + 1))[:depth]
    costs = engine.time_batches(before, sorted({1, *batches}), REPEATS)
    found = LookupGain(gain_key(model, threads), batches,
                       {size: round(c / costs[1], 4) for size, c in costs.items()},
                       engine.stats.generated_tokens, engine.stats.drafted,
                       engine.stats.accepted, time.strftime("%Y-%m-%d"),
                       round(time.perf_counter() - started, 1))
    keep_entry(gain_file(), found.key, found.as_dict())
    return found


@dataclass(frozen=True)
class Choice:
    """What ``--speculate auto`` chose, and why."""

    mode: str
    reason: str
    gain: LookupGain | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"chosen": self.mode, "reason": self.reason,
                **({"lookup": self.gain.as_dict()} if self.gain else {})}


def choose(gain: LookupGain) -> Choice:
    """Lookup where the measurement predicts it pays, else no speculation."""
    costs = ", ".join(f"{size}: {c:.2f}" for size, c in sorted(gain.verify_vs_one.items())
                      if size > 1)
    basis = (f"lookup predicted {gain.gain:.2f}x the decode rate: {gain.accepted} of "
             f"{gain.drafted} guesses kept over {gain.tokens} tokens, a batch of k tokens "
             f"costing ({costs}) of one")
    if gain.gain >= MIN_GAIN:
        return Choice("lookup", basis, gain)
    return Choice("off", f"{basis}; under {MIN_GAIN}x", gain)


def auto_choice(model: ResolvedModel | None, threads: int, *, kv_type: str | None = None,
                flash_attn: bool | None = None, on_gpu: bool = False,
                say: Callable[[str], None] = lambda _: None) -> Choice:
    """What ``--speculate auto`` means for a job on the local ``model`` (None: on a server):
    lookup where it is measured to pay on the model here (measured first, saying so through
    ``say``, where it was not yet)."""
    if model is None:
        return Choice("off", "a server decodes as it is set up to")
    if flash_attn is False or kv_type == "f16":
        return Choice("off", "lookup needs flash attention and a quantized KV cache")
    if on_gpu:
        return Choice("off", "lookup's gain is measured on the CPU; with layers on a GPU, "
                             "where a batch costs about one token, choose --speculate lookup")
    gain = kept_gain(model.path, threads)
    if gain is None:
        say("measuring whether guessing by lookup pays on this model, once (about 9 s on the "
            "default model, longer on a larger one)")
        gain = measure_gain(model.path, model.format, threads)
    return choose(gain)


def auto_for(model: str | None, threads: int | None, *, remote: bool = False,
             kv_type: str | None = None, flash_attn: bool | None = None,
             n_gpu_layers: int | None = None,
             say: Callable[[str], None] = lambda _: None) -> Choice:
    """:func:`auto_choice` for ``model`` as a user names it (a card, a GGUF; None: the
    default) with ``threads`` (None: the physical cores) on this machine: off for a card not
    downloaded (nothing to measure on), and where layers go to a GPU (``n_gpu_layers`` given,
    or unset on a machine that offloads)."""
    from lwlocal.memory.hardware import detect
    from lwlocal.models.catalogue import CARDS, DEFAULT_MODEL, local_file, resolve
    from lwlocal.util.cpu import default_threads

    if remote:  # a server decodes as it is set up to, whatever the threads here
        return auto_choice(None, 1)
    card = CARDS.get(model or DEFAULT_MODEL)
    if card is not None and local_file(card) is None:
        return Choice("off", f"lookup is measured on the model's file, and {card.name} is not "
                             f"downloaded")
    machine = detect()
    on_gpu = (n_gpu_layers or 0) > 0 or (n_gpu_layers is None and machine.offload
                                         and machine.vram_free > 0)
    return auto_choice(resolve(model), threads or default_threads(), kv_type=kv_type,
                       flash_attn=flash_attn, on_gpu=on_gpu, say=say)
