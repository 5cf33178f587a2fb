"""LongBench-Write style bench: the length score and length count on known values, prompt files,
the local judge on the default model, and a small bench on the fake chat backend resumed after
Ctrl-C."""

from __future__ import annotations

import json

import pytest

from lwlocal.bench.items import BenchItem, load_items
from lwlocal.bench.judge import DIMENSIONS, Judge, quality_score
from lwlocal.bench.run import BenchRun, _Runner
from lwlocal.bench.scoring import length_score, output_length
from lwlocal.models.catalogue import resolve
from lwlocal.util.errors import LwlocalError
from lwlocal.util.progress import ignore
from lwlocal.write import lookup_gain
from lwlocal.write.length import choose_target
from lwlocal.write.section_budget import SectionBudget
from tests.support.cli import invoke
from tests.support.lookup import keep_lookup_gain


@pytest.mark.parametrize(("output", "required", "score"), [
    (1000, 1000, 100.0), (4000, 1000, 0.0), (5000, 1000, 0.0), (500, 1000, 50.0),
    (2500, 1000, 50.0), (0, 1000, 0.0), (333, 1000, 0.0), (800, 1000, 87.5),
])
def test_length_score(output, required, score):
    assert length_score(output, required) == pytest.approx(score, abs=0.1)


def test_length_counts_english_words_and_chinese_characters():
    assert output_length("Hello world, it's 2024! 你好，世界。") == 4 + 4
    assert output_length("") == 0


def test_a_section_is_held_to_its_budget():
    budget = SectionBudget(100)
    assert not budget.may_end()
    budget.add("word " * 79)
    assert not budget.may_end() and not budget.should_stop()
    budget.add("word " * 31)
    assert budget.may_end() and not budget.should_stop()  # past the budget, mid-sentence
    budget.add("end.")
    assert budget.should_stop()  # past the budget at a sentence end
    late = SectionBudget(100)
    late.add("word " * 130)
    assert late.should_stop()  # OVERSHOOT: no sentence end needed


@pytest.mark.parametrize("given", [False, True])
def test_free_length_reads_the_instruction_as_write_does(tmp_path, given):
    item = BenchItem("en-x", "Write no less than 500 words about rain.", "", 500)
    run = BenchRun([item], ["smollm2-135m"], ["agentwrite"], tmp_path, given_length=given)
    settings = _Runner(run, ignore).settings("smollm2-135m", "agentwrite", item)
    target = choose_target(item.prompt, None, "agentwrite")
    assert (settings.words, settings.words_source) == (
        (500, "option") if given else (target.words, "instruction"))


def test_shipped_prompts_cover_every_length_range():
    items = load_items()
    assert {i.range for i in items} == {"<500", "500-2k", "2k-4k", ">4k"}
    assert any(i.id.startswith("zh") for i in items) and any(i.id.startswith("en") for i in items)


@pytest.mark.parametrize(("line", "problem"), [
    ("{not json", ":1: not a prompt line"),
    ('{"id": "a", "prompt": "x"}', "length"),
    ('{"id": "a", "prompt": "x", "length": 0}', "length must be positive"),
    ('{"id": "../a", "prompt": "x", "length": 5}', "it names the job's folder"),
])
def test_bad_prompt_files(tmp_path, line, problem):
    path = tmp_path / "p.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(LwlocalError, match=problem):
        load_items(path)
    path.write_text('{"id": "a", "prompt": "x", "length": 5}\n' * 2)
    with pytest.raises(LwlocalError, match=":2: duplicate id 'a'"):
        load_items(path)


def test_judge_answers_every_dimension_within_range():
    judge = Judge("smollm2-135m", n_ctx=1024)  # the answer cut to fit
    scores = judge.score("Write a note about tea.", "Tea is made from leaves. " * 400)
    assert set(scores) == set(DIMENSIONS) and all(1 <= v <= 10 for v in scores.values())
    assert quality_score(scores) == pytest.approx(10 * sum(scores.values()) / 6)


def test_bench_resumes_after_ctrl_c(lw_home, tmp_path, fake_model, ctrl_c):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("\n".join(json.dumps(p) for p in [
        {"id": "p1", "type": "note", "length": 60, "prompt": "Write a 60-word note about tea."},
        {"id": "p2", "type": "note", "length": 90,
         "prompt": "Write a 90-word note about coffee."},
    ]) + "\n")
    out = tmp_path / "bench"
    args = ["bench", "--prompts", str(prompts), "--mode", "direct", "-o", str(out)]

    def press_in_the_second_item(request: int, index: int, hooks) -> None:
        if request == 1 and index == 5:
            ctrl_c()

    fake_model.on_piece = press_in_the_second_item
    interrupted = invoke(*args)
    assert interrupted.returncode == 130, interrupted.stderr
    results = out / "results.jsonl"
    first = results.read_text()
    assert len(first.splitlines()) in (1, 2)

    fake_model.on_piece = None
    done = invoke(*args, "--json", check=True)
    lines = results.read_text().splitlines()
    assert len(lines) == 2 and results.read_text().startswith(first)  # p1 not run again
    assert [m[0].content for m in fake_model.requests].count(
        "Write a 60-word note about tea.\n\nWrite about 60 words.") == 1
    summary = json.loads(done.stdout)
    assert summary[0]["items"] == 2 and summary[0]["errors"] == 0
    assert 0 <= summary[0]["length_score"] <= 100 and summary[0]["generated_tokens"] > 0
    for row in map(json.loads, lines):
        assert row["length"] > 0 and row["decode_tokens_per_s"] > 0
    assert {p.name for p in (out / "plots").iterdir()} == {
        "length_vs_required.png", "length_score_by_range.png", "throughput.png"}
    assert (out / "summary.md").read_text().startswith("| model | mode |")


def test_bench_speculates_with_a_draft_model(lw_home, tmp_path, fake_model, default_model):
    """--speculate draft MODEL reaches every item's session (the default model as its own
    draft: the fake never loads it)."""
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"id": "p1", "type": "note", "length": 60,
                                   "prompt": "Write a 60-word note about tea."}) + "\n")
    invoke("bench", "--prompts", str(prompts), "--mode", "direct", "-o", str(tmp_path / "b"),
           "--speculate", "draft", str(default_model), check=True)
    assert fake_model.loaded == [("q8_0", f"draft {default_model.name}")]


def test_bench_speculate_auto_chooses_for_each_model(lw_home, tmp_path, fake_model,
                                                      monkeypatch):
    """--speculate auto is chosen for each model from what was measured on it here, said on
    standard error with the model's name where there are several, and reaches its items."""
    monkeypatch.setattr(lookup_gain, "measure_gain", pytest.fail)  # kept: not measured again
    keep_lookup_gain(1.2)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"id": "p1", "type": "note", "length": 60,
                                   "prompt": "Write a 60-word note about tea."}) + "\n")
    ran = invoke("bench", "--prompts", str(prompts), "--mode", "direct", "-o",
                 str(tmp_path / "b"), "--speculate", "auto", check=True)
    assert fake_model.loaded == [("q8_0", "lookup")]
    assert "lwlocal: --speculate auto: lookup (lookup predicted 1.56x" in ran.stderr
    twice = invoke("bench", "--prompts", str(prompts), "--mode", "direct", "-o",
                   str(tmp_path / "c"), "--speculate", "auto", "--model", "smollm2-135m",
                   "--model", str(resolve(None).path), check=True)
    assert "--speculate auto for smollm2-135m: lookup" in twice.stderr
