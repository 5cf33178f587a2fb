"""--speculate auto: lookup's predicted gain from what it does on a model and what a batch
costs here, measured once and kept; the choice, and the commands that take it."""

from __future__ import annotations

import json

import pytest

from lwlocal.models.catalogue import resolve
from lwlocal.util.cpu import default_threads
from lwlocal.write import lookup_gain
from lwlocal.write.lookup_gain import (
    MIN_GAIN,
    LookupGain,
    auto_choice,
    choose,
    gain_key,
    kept_gain,
    measure_gain,
)
from tests.support.cli import invoke


def found(batches: dict[int, int], costs: dict[int, float], tokens: int) -> LookupGain:
    return LookupGain("key", batches, costs, tokens, drafted=80, accepted=60)


def test_the_gain_is_tokens_over_the_batches_cost_in_one_token_steps():
    # 100 single tokens and 50 batches of a token and two guesses: 100 + 50 x 1.2 steps' time
    # for 250 tokens, every one but the last evaluated
    pays = found({1: 100, 3: 50}, {1: 1.0, 3: 1.2}, tokens=250)
    assert pays.gain == pytest.approx(249 / 160)
    chosen = choose(pays)
    assert chosen.mode == "lookup" and "1.56x" in chosen.reason and "3: 1.20" in chosen.reason
    costly = found({1: 100, 3: 50}, {1: 1.0, 3: 3.0}, tokens=250)  # a CPU's batch of three
    assert costly.gain == pytest.approx(249 / 250)
    assert choose(costly).mode == "off" and f"under {MIN_GAIN}x" in choose(costly).reason


def test_auto_is_off_on_a_server_over_an_f16_cache_and_on_a_gpu_without_measuring(
        monkeypatch):
    monkeypatch.setattr(lookup_gain, "measure_gain", pytest.fail)
    assert auto_choice(None, 1).mode == "off"
    model = resolve(None)
    assert auto_choice(model, 1, kv_type="f16").mode == "off"
    assert auto_choice(model, 1, flash_attn=False).mode == "off"
    assert "measured on the CPU" in auto_choice(model, 1, on_gpu=True).reason


def test_a_kept_measurement_changed_by_hand_is_measured_again(lw_home):
    model = resolve(None).path
    for broken in ({"tokens": 0}, {"batches": {"5": 3}}, {"verify_vs_one": {"1": 0}}):
        kept = LookupGain(gain_key(model, 1), {1: 10}, {1: 1.0}, 11, 0, 0)
        entry = kept.as_dict() | broken
        lookup_gain.gain_file().write_text(json.dumps({kept.key: entry}))
        assert kept_gain(model, 1) is None, broken


@pytest.mark.model
def test_lookup_is_measured_on_the_model_once_and_kept(default_model, lw_home, monkeypatch):
    model = resolve(None)
    threads = default_threads()
    measured = measure_gain(model.path, model.format, threads, tokens=48, depth=300)
    assert sum(measured.batches.values()) >= 1 and measured.tokens == 48
    assert measured.verify_vs_one[1] == 1.0 and set(measured.batches) <= set(
        measured.verify_vs_one)
    assert 0 <= measured.accepted <= measured.drafted
    assert kept_gain(model.path, threads) == measured  # from the lwlocal home
    assert measured.key == gain_key(model.path, threads)
    said: list[str] = []
    monkeypatch.setattr(lookup_gain, "measure_gain", pytest.fail)  # kept: not measured again
    assert auto_choice(model, threads, say=said.append) == choose(measured) and not said


def keep(gain: float, threads: int) -> None:
    """A kept measurement for the default model whose predicted gain is ``gain``."""
    model = resolve(None).path
    kept = LookupGain(gain_key(model, threads), {1: 100}, {1: 1 / gain}, 101, 10, 5)
    lookup_gain.gain_file().write_text(json.dumps({kept.key: kept.as_dict()}))


def test_plan_says_what_auto_chose_and_why(lw_home):
    threads = default_threads()
    keep(1.3, threads)
    planned = json.loads(invoke("plan", "--words", "500", "--speculate", "auto", "--json",
                                check=True).stdout)
    assert planned["speculation"]["chosen"] == "lookup"
    assert planned["speculation"]["lookup"]["gain"] == 1.3
    assert planned["kv_type"] != "f16"  # what lookup needs
    keep(0.9, threads)
    text = invoke("plan", "--words", "500", "--speculate", "auto", check=True).stdout
    assert "speculation (auto): off, lookup predicted 0.90x" in " ".join(text.split())


def test_write_keeps_the_mode_auto_chose(lw_home, fake_model):
    keep(1.3, default_threads())
    done = invoke("write", "Write about tea.", "--words", "120", "--speculate", "auto",
                  "--json", check=True)
    assert json.loads(done.stdout)["settings"]["speculate"] == "lookup"
    assert "--speculate auto: lookup (lookup predicted 1.30x" in done.stderr
    assert fake_model.loaded[-1][1] == "lookup"


def test_the_time_plan_counts_lookups_measured_gain(lw_home):
    """--speculate lookup on a model whose gain is measured: its tokens decoded that much
    faster (or slower) in the job's predicted time; without a measurement, as one at a time."""
    args = ("plan", "--words", "2000", "--json", "--speculate")
    plain = json.loads(invoke(*args, "off", check=True).stdout)
    unmeasured = json.loads(invoke(*args, "lookup", check=True).stdout)
    assert unmeasured["decode_gain"] == 1.0
    assert unmeasured["predicted_seconds"] == plain["predicted_seconds"]
    keep(2.0, default_threads())
    faster = json.loads(invoke(*args, "lookup", check=True).stdout)
    assert faster["decode_gain"] == 2.0
    assert faster["decode_tokens_per_s"]["start"] == pytest.approx(
        2 * plain["decode_tokens_per_s"]["start"], abs=0.2)
    steps = zip(plain["predicted_steps"], faster["predicted_steps"], strict=True)
    for before, after in steps:  # prefill as it was, decode in half the time
        if before["name"] == "outline":  # written under a grammar: never speculated
            assert after["seconds"] == before["seconds"]
        else:
            assert after["seconds"] < before["seconds"]
    assert 0.5 * plain["predicted_seconds"] < faster["predicted_seconds"] \
        < plain["predicted_seconds"]


def test_auto_plans_a_model_not_downloaded_without_lookup(lw_home):
    """plan plans a card before download from its published shape; auto has no file to
    measure lookup on, so it is off, and says why."""
    done = invoke("plan", "longwriter-glm4-9b", "--words", "2000", "--speculate", "auto",
                  "--json")  # whether it fits depends on the machine
    speculation = json.loads(done.stdout)["speculation"]
    assert speculation["chosen"] == "off" and "is not downloaded" in speculation["reason"]


def test_resume_keeps_auto_off_over_the_jobs_f16_cache(lw_home, fake_model):
    """resume --speculate auto on a job planned with an f16 cache: lookup would change its
    text there, so off, whatever the kept measurement says."""
    keep(1.3, default_threads())
    started = json.loads(invoke("write", "Write about tea.", "--words", "120", "--kv-type",
                                "f16", "--json", check=True).stdout)
    resumed = invoke("resume", started["job"], "--speculate", "auto", check=True)
    assert "--speculate auto: off (lookup needs flash attention and a quantized KV cache)" \
        in resumed.stderr


def test_auto_is_off_when_planning_for_another_machine(lw_home):
    keep(1.3, default_threads())  # lookup pays here, which says nothing of the other machine
    planned = json.loads(invoke("plan", "--words", "500", "--ram", "8", "--speculate", "auto",
                                "--json", check=True).stdout)
    assert planned["speculation"]["chosen"] == "off"
    assert "the plan is for another" in planned["speculation"]["reason"]
