"""How long a writing job takes with a plan's settings: the outline, then each section's prompt
and text, token by token at the depth it is written at. Where the context fills, the writer
drops the oldest sections until it is half full and moves the KV cache's window back in place
(``write/writer.py``): nothing is evaluated again (where the model's cache can move; the
engine evaluates the rest where it cannot), and the next sections are written at the lesser
depth."""

from __future__ import annotations

from dataclasses import dataclass, field

from lwlocal.memory.context_need import Need
from lwlocal.memory.context_settings import Settings
from lwlocal.memory.model_shape import ModelShape
from lwlocal.memory.speed import Speed, decode_rate, decode_seconds, prefill_rate, prefill_seconds


@dataclass(frozen=True)
class Step:
    """One request: ``prefill`` prompt tokens evaluated after ``depth``, then ``decode`` tokens."""

    name: str
    depth: int
    prefill: int
    decode: int
    seconds: float


@dataclass
class JobTime:
    """A job's predicted seconds, request by request, and its rates at the start and the end."""

    steps: list[Step] = field(default_factory=list)
    decode_rates: tuple[float, float] = (0.0, 0.0)
    prefill_rates: tuple[float, float] = (0.0, 0.0)

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.steps)

    @property
    def prefill_tokens(self) -> int:
        return sum(s.prefill for s in self.steps)

    def section_seconds(self) -> list[float]:
        """Seconds of each section, in order (the outline's not among them)."""
        return [s.seconds for s in self.steps if s.name != "outline"]

    def as_dict(self) -> dict[str, object]:
        return {
            "predicted_seconds": round(self.seconds, 1),
            "prefill_tokens_per_s": {"start": round(self.prefill_rates[0], 1),
                                     "end": round(self.prefill_rates[1], 1)},
            "decode_tokens_per_s": {"start": round(self.decode_rates[0], 1),
                                    "end": round(self.decode_rates[1], 1)},
            "predicted_steps": [{"name": s.name, "depth": s.depth, "prefill_tokens": s.prefill,
                                 "decode_tokens": s.decode, "seconds": round(s.seconds, 2)}
                                for s in self.steps],
        }


def _step(shape: ModelShape, s: Settings, speed: Speed, name: str, depth: int, prefill: int,
          decode: int, gain: float) -> Step:
    seconds = prefill_seconds(shape, s, speed, depth, prefill)
    start = depth + prefill
    # decode cost is linear in depth: the mean token is written half-way
    seconds += decode * decode_seconds(shape, s, speed, start + decode // 2) / gain
    return Step(name, depth, prefill, decode, seconds)


def job_time(shape: ModelShape, s: Settings, speed: Speed, need: Need,
             decode_gain: float = 1.0) -> JobTime:
    """Predict the job of ``need`` (its words, in its sections or one answer) with ``s``,
    the text's tokens decoded ``decode_gain`` times as fast as one at a time (speculating;
    the outline is written under a grammar, which the engine never speculates under)."""
    tpw, words, sections, turns = need.time_tokens_per_word, need.words, need.sections, need.turns
    steps = []
    if need.mode == "direct":
        output = round(words * tpw)
        prompt = turns.request + need.prompt_tokens
        steps.append(_step(shape, s, speed, "text", 0, prompt, output, decode_gain))
        end = prompt + output
    else:
        steps.append(_step(shape, s, speed, "outline", 0, turns.outline_prompt,
                           sections * turns.outline_per_section, 1.0))  # a grammar's: no guess
        head = turns.head + sections * turns.outline_per_section  # the outline in it
        section = round(words * tpw / sections)
        kept: list[int] = []  # tokens of the sections still in the conversation
        depth = 0
        for index in range(1, sections + 1):
            prompt = head if index == 1 else turns.request
            if depth + prompt + section > s.n_ctx and kept:  # drop the oldest, move back
                while kept and head + sum(kept) + len(kept) * turns.request \
                        + section > s.n_ctx // 2:
                    kept.pop(0)
                depth = head + sum(kept) + len(kept) * turns.request
            steps.append(_step(shape, s, speed, f"section {index}", depth, prompt, section,
                               decode_gain))
            depth += prompt + section
            kept.append(section)
        end = depth
    return JobTime(steps, (decode_gain * decode_rate(shape, s, speed, 0),
                           decode_gain * decode_rate(shape, s, speed, end)),
                   (prefill_rate(shape, s, speed, 0), prefill_rate(shape, s, speed, end)))
