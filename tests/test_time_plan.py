"""The time plan: what a token costs at a depth, a job's predicted time as the writer moves
its window, the planner choosing by time, the time left while writing, and the commands that
show them (benchmarks/time_plan.py holds the plan against the clock)."""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace

import pytest
from rich.progress import Progress as RichProgress

from lwlocal.cli.progress import TimeLeftColumn
from lwlocal.memory.context_need import context_needed
from lwlocal.memory.context_settings import Settings
from lwlocal.memory.hardware import Machine
from lwlocal.memory.job_time import job_time
from lwlocal.memory.model_shape import shape_from_gguf
from lwlocal.memory.planner import plan
from lwlocal.memory.speed import Speed, decode_seconds, prefill_seconds
from lwlocal.memory.speed_probe import kept_speed, speed_file, speed_key
from lwlocal.util.cpu import default_threads
from lwlocal.write import eta as eta_module
from lwlocal.write.eta import Eta
from tests.support.cli import invoke

GiB = 2**30
MACHINE = Machine(ram_total=24 * GiB, ram_available=20 * GiB, vram_total=0, vram_free=0,
                  gpu=None, unified=False, cores=2, threads=2)
# made-up constants of the order this machine measures, with a slower quantized attention
SPEED = Speed("test", weight_bytes_per_s=20e9, decode_block_s=3e-4, flops_per_s=3e11,
              prefill_block_s=6e-5, attention={"f16": (2e-10, 3e-11), "q8_0": (3e-10, 2e-10),
                                               "q4_0": (4e-10, 4e-10)})


@pytest.fixture(scope="module")
def shape(default_model):
    return shape_from_gguf(default_model)


def test_a_token_costs_more_deeper_in_the_context_and_a_batch_less_per_token(shape):
    s = Settings(8192, "q8_0", True, 0, 512, 2)
    assert decode_seconds(shape, s, SPEED, 4096) > decode_seconds(shape, s, SPEED, 0)
    slope = decode_seconds(shape, s, SPEED, 1) - decode_seconds(shape, s, SPEED, 0)
    assert slope == pytest.approx(3e-10 * 30 * 9 * 64)  # per query head element and block
    one_batch = prefill_seconds(shape, s, SPEED, 0, 512)
    assert one_batch / 512 < decode_seconds(shape, s, SPEED, 0) / 2
    smaller = prefill_seconds(shape, replace(s, n_batch=128), SPEED, 0, 512)
    assert smaller > one_batch  # the weights read once per batch, four times
    assert prefill_seconds(shape, s, SPEED, 4096, 512) > one_batch


def test_a_job_is_its_outline_and_sections_and_a_full_context_moves_back(shape):
    need = context_needed(3000, "agentwrite", 1.3, 6)
    roomy = job_time(shape, Settings(need.full, "q8_0"), SPEED, need)
    assert [s.name for s in roomy.steps] == ["outline"] + [f"section {i}" for i in range(1, 7)]
    assert [s.decode for s in roomy.steps[1:]] == [650] * 6
    depths = [s.depth for s in roomy.steps[1:]]
    assert depths == sorted(depths) and depths[0] == 0  # one growing conversation
    assert roomy.decode_rates[0] > roomy.decode_rates[1]
    tight = job_time(shape, Settings(need.minimum, "q8_0"), SPEED, need)
    sections = tight.steps[1:]
    moves = [b for a, b in zip(sections, sections[1:], strict=False) if b.depth < a.depth]
    # the oldest sections leave the KV cache and the rest moves back: nothing evaluated again
    assert moves and all(s.depth > 0 and s.prefill == sections[1].prefill for s in moves)
    assert tight.prefill_tokens == roomy.prefill_tokens
    assert tight.decode_rates[1] > roomy.decode_rates[1]  # written at a lesser depth
    direct = job_time(shape, Settings(4096, "q8_0"), SPEED,
                      context_needed(2000, "direct", 1.3, 1))
    assert [s.name for s in direct.steps] == ["text"] and direct.steps[0].decode == 2600


def test_the_planner_keeps_the_largest_context_and_picks_the_fastest_batch(shape):
    need = context_needed(2000, "agentwrite", 1.3, 8)
    chosen = plan(shape, MACHINE, need, speed=SPEED)
    assert chosen.time is not None and chosen.speed is SPEED
    assert chosen.settings.n_batch == 512 and chosen.settings.kv_type == "q8_0"
    assert chosen.settings.n_ctx == need.full  # not a smaller, faster one that drops sections
    times = {s.n_batch: seconds for s, seconds in chosen.compared}
    assert set(times) == {512, 256, 128} and min(times.values()) == times[512]
    assert chosen.time.seconds == pytest.approx(times[512])
    assert plan(shape, MACHINE, need).time is None  # no speed measured: no time
    on_gpu = replace(MACHINE, vram_total=8 * GiB, vram_free=8 * GiB, gpu="a GPU", offload=True)
    assert plan(shape, on_gpu, need, speed=SPEED).time is None  # measured on the CPU only


def test_time_left_is_the_plan_scaled_by_the_pace_so_far(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(eta_module.time, "monotonic", lambda: now[0])
    eta = Eta([10.0, 20.0, 20.0])
    assert eta.left(1, 0.0) == 40.0  # too early to correct the plan
    now[0] += 20.0  # the outline and half of section 1 took 20 s, the plan said 20
    assert eta.left(1, 0.5) == pytest.approx(30.0)
    now[0] += 20.0  # twice as slow as planned from there: 40 s for 30 of planned work
    assert eta.left(2, 0.0) == pytest.approx(20.0 * 40 / 30)
    assert eta.left(3, 0.0) == 0.0


def test_the_progress_shows_the_jobs_time_left_where_known():
    column, bar = TimeLeftColumn(), RichProgress()
    writing = bar.add_task("section 1/3", total=100, left=125.4)
    converting = bar.add_task("tensor 1/3", total=100, left=None)
    assert column.render(bar.tasks[writing]).plain == "~2:05 left"
    assert "left" not in column.render(bar.tasks[converting]).plain


def test_this_machines_speed_is_measured_and_kept():
    """The suite's measurement (tests/conftest.py, `lwlocal hw --measure`'s): every constant
    positive, a quantized cache's attention costlier per element than f16's."""
    speed = kept_speed(default_threads())
    assert speed is not None and speed.key == speed_key(default_threads())
    assert speed.weight_bytes_per_s > 1e8 and speed.flops_per_s > 1e8
    assert set(speed.attention) == {"f16", "q8_0", "q4_0"}
    assert speed.attention["q8_0"][1] > speed.attention["f16"][1]  # no batched kernel
    speed_file().write_text("{not json")
    assert kept_speed(default_threads()) is None


def test_plan_predicts_the_jobs_time_and_measures_the_speed_first_if_need_be(monkeypatch):
    data = json.loads(invoke("plan", "--words", "2000", "--explain", "--json",
                             check=True).stdout)
    assert data["predicted_seconds"] > 0 and len(data["predicted_steps"]) >= 3
    assert data["decode_tokens_per_s"]["start"] >= data["decode_tokens_per_s"]["end"] > 0
    assert data["speed"]["key"] == speed_key(default_threads())
    assert [c["chosen"] for c in data["compared"]].count(True) == 1
    text = invoke("plan", "--words", "2000", "--explain", check=True).stdout
    assert "time  about" in text and "<- chosen" in text

    from lwlocal.cli import models

    measured = []
    kept = speed_file().read_text()
    speed_file().unlink()

    def measure(threads, model):
        measured.append(threads)
        speed_file().write_text(kept)

    monkeypatch.setattr(models, "measure_speed", measure)
    done = invoke("plan", "--words", "500", "--json", check=True)
    assert measured == [default_threads()] and "measuring this machine's speed" in done.stderr
    assert json.loads(done.stdout)["predicted_seconds"] > 0


def test_a_job_reports_its_predicted_time_and_its_events_the_time_left(fake_model):
    from lwlocal.write.jobs import Session
    from lwlocal.write.settings import JobSettings

    session = Session(JobSettings(prompt="Write a guide to green tea.", words=600))
    events = []
    result = session.run(session.new_job(), progress=events.append)
    assert result.predicted_seconds is not None and result.predicted_seconds > 0
    assert result.as_dict()["predicted_seconds"] == round(result.predicted_seconds, 1)
    left = [e.left for e in events if e.stage in ("outline", "write")]
    assert left and all(x is not None and x >= 0 for x in left)
    written = json.loads(invoke("write", "Write a guide to green tea.", "--words", "600",
                                "--json", check=True).stdout)
    assert written["predicted_seconds"] > 0 and written["seconds"] > 0
    said = invoke("write", "Write a guide to green tea.", "--words", "600", check=True).stderr
    assert re.search(r"600 planned\) in \d+ s \(the plan said \d+ s\)", said), said


def test_the_writers_turns_are_counted_from_its_templates():
    from lwlocal.write.turn_sizes import turn_sizes

    short = turn_sizes("Write about tea.", 2000, 4, 1.25)
    long = turn_sizes("Write about tea. " + "Mention every region that grows it. " * 20, 2000, 4,
                      1.25)
    assert long.outline_prompt - short.outline_prompt == pytest.approx(120 * 1.25, abs=2)
    assert long.head - short.head == pytest.approx(120 * 1.25, abs=2)  # the prompt heads it
    assert long.request == short.request < short.head  # a later request is the request alone
    assert 40 < short.outline_per_section < 60  # a title, a main point, a count, in JSON


def test_hw_measure_measures_the_speed_again(monkeypatch):
    from lwlocal.cli import models

    measured = []
    monkeypatch.setattr(models, "measure_speed", lambda threads, model: measured.append(threads))
    text = invoke("hw", "--measure", check=True).stdout
    assert measured == [default_threads()] and "speed " in text and "GB/s" in text


def test_the_plan_counts_the_models_pace_from_its_runs_here(fake_model, default_model):
    """The 2,000-word benchmark job was predicted 30% over: the default model wrote 1.14 tokens
    a word against its tokenizer's 1.28 on sample prose. After a run, the plan counts the
    tokens the model generated for the words it wrote."""
    from lwlocal.write.jobs import Session
    from lwlocal.write.settings import JobSettings
    from lwlocal.write.writing_pace import kept_pace

    def planned() -> dict:
        return json.loads(invoke("plan", "--words", "600", "--json", check=True).stdout)

    first = planned()
    assert first["time_tokens_per_word"] == first["tokens_per_word"]
    assert first["time_tokens_per_word_from"] == "its tokenizer on sample prose"
    session = Session(JobSettings(prompt="Write a guide to green tea.", words=600))
    result = session.run(session.new_job())
    tokens = sum(r.generated_tokens for r in result.sections)
    words = sum(r.written for r in result.sections)
    pace = kept_pace(default_model, "agentwrite", "en")
    assert pace is not None and pace.runs == 1
    assert pace.tokens_per_word == pytest.approx(tokens / words)
    assert pace.tokens_per_word != pytest.approx(first["tokens_per_word"], abs=0.01)
    after = planned()
    assert after["time_tokens_per_word"] == round(pace.tokens_per_word, 3)
    assert after["time_tokens_per_word_from"] == "the model's pace in its last 1 run(s) here"
    sections = [s for s in after["predicted_steps"] if s["name"].startswith("section")]
    assert sum(s["decode_tokens"] for s in sections) == pytest.approx(
        600 * pace.tokens_per_word, abs=len(sections))
    assert after["tokens_per_word"] == first["tokens_per_word"]  # the context's: as it was
    assert after["n_ctx"] == first["n_ctx"]


def test_the_pace_is_the_latest_runs_per_model_file_and_mode(tmp_path):
    from lwlocal.write.writing_pace import PACE_RUNS, keep_pace, kept_pace, pace_file

    model, other = tmp_path / "a.gguf", tmp_path / "b.gguf"
    model.write_bytes(b"a")
    other.write_bytes(b"bb")
    assert kept_pace(model, "agentwrite", "en") is None
    keep_pace(model, "agentwrite", "en", [(100, 150), (100, 50)])  # sections: 200 words, 200 tokens
    assert kept_pace(model, "agentwrite", "en").tokens_per_word == 1.0
    for _ in range(PACE_RUNS):
        keep_pace(model, "agentwrite", "en", [(100, 120)])
    latest = kept_pace(model, "agentwrite", "en")
    assert (latest.runs, latest.tokens_per_word) == (PACE_RUNS, pytest.approx(1.2))
    keep_pace(model, "agentwrite", "en", [])  # a run that wrote nothing: no pace
    assert kept_pace(model, "agentwrite", "en") == latest
    assert kept_pace(model, "direct", "en") is None and kept_pace(other, "agentwrite", "en") is None
    assert kept_pace(model, "agentwrite", "zh") is None  # a word is a character in Chinese
    pace_file().write_text('{"x": 1, "' + next(iter(json.loads(pace_file().read_text())))
                           + '": {"runs": [[0, 5], "?", [10, 12]]}}')
    assert kept_pace(model, "agentwrite", "en").tokens_per_word == pytest.approx(1.2)  # one good


def test_jobs_finishing_together_each_keep_their_pace(tmp_path, lw_home):
    import threading

    from lwlocal.write.writing_pace import PACE_RUNS, keep_pace, kept_pace

    models = [tmp_path / f"{n}.gguf" for n in range(4)] * 2  # two jobs on each model
    for model in models:
        model.write_bytes(b"a")
    start = threading.Barrier(len(models))

    def finish(model):
        start.wait()
        keep_pace(model, "agentwrite", "en", [(100, 120)])

    threads = [threading.Thread(target=finish, args=(model,)) for model in models]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [kept_pace(model, "agentwrite", "en").runs for model in models[:4]] == [2] * 4
    for _ in range(PACE_RUNS):
        keep_pace(models[0], "agentwrite", "en", [(100, 120)])
    assert kept_pace(models[0], "agentwrite", "en").runs == PACE_RUNS


def test_a_home_that_cannot_be_written_leaves_a_finished_run_without_its_pace(tmp_path,
                                                                             monkeypatch):
    from lwlocal.write import writing_pace

    model = tmp_path / "a.gguf"
    model.write_bytes(b"a")

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)  # what atomic_write meets on a full disk
    writing_pace.keep_pace(model, "agentwrite", "en", [(100, 120)])  # no error
    assert writing_pace.kept_pace(model, "agentwrite", "en") is None
