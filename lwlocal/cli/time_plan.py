"""A plan's time in words and as JSON fields: the job's predicted seconds, its rates at the
start and the end, what they rest on, and with ``--explain`` the settings compared."""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from lwlocal.cli.render import out
from lwlocal.memory.context_settings import Settings
from lwlocal.memory.job_time import JobTime
from lwlocal.memory.planner import Plan


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 40 s``, ``1 h 05 min``."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _why_not(plan: Plan) -> str:
    if plan.settings.n_gpu_layers:
        return "not predicted with layers on a GPU (this machine's speed is measured on the CPU)"
    return "not predicted: this machine's speed is not measured (lwlocal hw --measure)"


def _pace(plan: Plan) -> str:
    """Where the time plan's tokens a word come from."""
    need = plan.need
    if need.pace:
        return f"the model's pace in its last {need.pace_runs} run(s) here"
    return "its tokenizer on sample prose" if need.measured else "an assumed ratio"


def _settings(s: Settings) -> str:
    return f"n_ctx {s.n_ctx}, KV {s.kv_type}, batch {s.n_batch}"


def _parts(t: JobTime) -> str:
    """``outline 9 s, 6 sections 1 min 20 s (11-16 s each)``."""
    parts = [f"{step.name} {duration(step.seconds)}" for step in t.steps
             if step.name in ("outline", "text")]
    sections = t.section_seconds() if parts != ["text"] else []
    if sections and t.steps[-1].name != "text":
        parts.append(f"{len(sections)} section{'s' * (len(sections) > 1)} "
                     f"{duration(sum(sections))} ({duration(min(sections))}"
                     + (f" to {duration(max(sections))} each)" if len(sections) > 1 else ")"))
    return ", ".join(parts)


def print_time_plan(plan: Plan, explain: bool) -> None:
    t, speed = plan.time, plan.speed
    if t is None or speed is None:
        out.print(f"  time  {_why_not(plan)}")
        return
    out.print(f"  time  about {duration(t.seconds)} on this machine: {escape(_parts(t))}")
    out.print(f"        decode {t.decode_rates[0]:.0f} -> {t.decode_rates[1]:.0f} tokens/s and "
              f"prefill {t.prefill_rates[0]:.0f} -> {t.prefill_rates[1]:.0f} tokens/s from the "
              f"job's start to its end; {t.prefill_tokens:,} prompt tokens evaluated "
              "(loading the model not counted)")
    out.print(f"        from this machine's speed on {plan.settings.threads} threads, measured "
              f"{speed.measured_at} (lwlocal hw --measure measures it again), and "
              f"{plan.need.time_tokens_per_word:.2f} tokens a word, from {_pace(plan)}")
    if plan.decode_gain != 1.0:
        out.print(f"        decoding with lookup at {plan.decode_gain:.2f}x the rate one token "
                  "at a time, as measured on the model (docs/speculation.md)")
    if explain:
        out.print("  compared (the settings that fit with the largest context and the most "
                  "precise KV cache that fit):")
        for settings, seconds in plan.compared:
            mark = "  <- chosen" if settings == plan.settings else ""
            out.print(f"    {_settings(settings)}: {duration(seconds)}{mark}")


def time_plan_fields(plan: Plan, explain: bool) -> dict[str, Any]:
    """``predicted_seconds`` and the rest for ``plan --json`` (None where not predicted)."""
    t, speed = plan.time, plan.speed
    if t is None or speed is None:
        return {"predicted_seconds": None, "time_not_predicted": _why_not(plan)}
    fields = t.as_dict() | {"speed": speed.as_dict(), "decode_gain": round(plan.decode_gain, 3),
                            "time_tokens_per_word": round(plan.need.time_tokens_per_word, 3),
                            "time_tokens_per_word_from": _pace(plan)}
    if explain:
        fields["compared"] = [{"n_ctx": s.n_ctx, "kv_type": s.kv_type, "n_batch": s.n_batch,
                               "predicted_seconds": round(seconds, 1),
                               "chosen": s == plan.settings} for s, seconds in plan.compared]
    return fields
