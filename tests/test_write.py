"""`lwlocal write`, `resume` and `jobs` in this process on the fake chat backend: the outline,
an AgentWrite job in one growing conversation, an edited outline, Ctrl-C and resume, context
overflow, a long direct job in the planner's context. (test_write_e2e.py runs the real model.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lwlocal.write.journal import Job
from tests.support.cli import invoke
from tests.support.job_result import check_four_section_result

PROMPT = "Write a travel guide to Lisbon for a first-time visitor."


@pytest.fixture(autouse=True)
def fake(fake_model):
    return fake_model


def outline_of(*extra: str) -> dict:
    proc = invoke("write", PROMPT, "--words", "600", "--outline-only", "--json", *extra, check=True)
    return json.loads(proc.stdout)


def test_outline_only_prints_a_parseable_outline(lw_home, fake):
    outline = outline_of()
    sections = outline["sections"]
    assert 1 <= len(sections) <= 4
    assert sum(s["words"] for s in sections) == 600
    assert all(s["title"] and s["main_point"] for s in sections)
    assert not (lw_home / "jobs").exists()  # an outline alone starts no job
    assert len(fake.requests) == 1 and PROMPT in fake.requests[0][-1].content


def test_the_old_plan_only_says_what_it_is_now(lw_home):
    proc = invoke("write", PROMPT, "--plan-only")
    assert proc.returncode == 2 and not (lw_home / "jobs").exists()
    assert "--plan-only is now --outline-only" in proc.stderr.strip().splitlines()[-1]


def test_agentwrite_job_keeps_one_growing_conversation(lw_home, tmp_path, fake):
    out = tmp_path / "doc.md"
    proc = invoke("write", PROMPT, "--words", "480", "--sections", "4", "--ctx", "4096",
                  "-o", str(out), "--json", check=True)
    result = json.loads(proc.stdout)
    check_four_section_result(result)
    # sections are held near their budgets
    for s in result["sections"]:
        assert 0.8 * s["planned"] <= s["written"] <= s["planned"] * 1.3 + 1
    assert result["words"] >= 0.6 * 480
    # one growing conversation: prompt tokens evaluated stay below 1.15x the final context
    assert result["prompt_tokens_evaluated"] <= 1.15 * result["context_tokens"]
    assert len(fake.requests) == 5  # the outline and four sections
    for before, after in zip(fake.requests[1:], fake.requests[2:], strict=False):
        assert after[:len(before)] == before  # each request extends the one before
    document = out.read_text()
    assert document.count("\n## ") + document.startswith("## ") == 4
    job = Job.open(result["job"], lw_home / "jobs")
    assert job.state == "done" and job.finished() == [1, 2, 3, 4]
    listed = invoke("jobs", "--json", check=True).stdout.splitlines()
    assert json.loads(listed[0])["state"] == "done"


def test_edited_outline_is_written_as_given(tmp_path):
    outline = outline_of("--sections", "2")
    outline["sections"][0]["words"] = 50
    outline["sections"][1]["words"] = 100
    outline["words"] = 150
    path = tmp_path / "outline.json"
    path.write_text(json.dumps(outline))
    proc = invoke("write", "--outline", str(path), "--json", check=True)
    result = json.loads(proc.stdout)
    assert [s["planned"] for s in result["sections"]] == [50, 100]
    assert [s["title"] for s in result["sections"]] == [s["title"] for s in outline["sections"]]


def test_ctrl_c_keeps_the_job_and_resume_finishes_it(lw_home, fake, ctrl_c):
    def press_in_section_2(request: int, index: int, hooks) -> None:
        if request == 2 and index == 10:  # the outline, section 1, then 10 words of section 2
            ctrl_c()

    fake.on_piece = press_in_section_2
    proc = invoke("write", PROMPT, "--words", "500", "--sections", "4", "--ctx", "4096")
    assert proc.returncode == 130, proc.stderr
    assert "interrupted" in proc.stderr and "lwlocal resume" in proc.stderr
    jobs = lw_home / "jobs"
    (job_dir,) = jobs.iterdir()
    job = Job.open(str(job_dir), jobs)
    assert job.state == "interrupted" and job.finished() == [1]
    assert job.partial_path(2).read_text()  # what was streamed of section 2 is on disk
    first = job.section_path(1).read_bytes()
    fake.on_piece = None
    invoke("resume", job.id, check=True)
    job = Job.open(job.id, jobs)
    assert job.state == "done" and job.finished() == [1, 2, 3, 4]
    assert job.section_path(1).read_bytes() == first
    assert not list(job_dir.glob("sections/*.partial.md"))


def test_speculate_is_kept_by_the_job_and_reported(lw_home, fake, ctrl_c):
    """--speculate lookup: a quantized KV cache (none given), kept in the journal for resume,
    which can change it; --json reports drafted, accepted and the acceptance rate."""
    def press_in_section_2(request: int, index: int, hooks) -> None:
        if request == 2 and index == 10:
            ctrl_c()

    fake.on_piece = press_in_section_2
    proc = invoke("write", PROMPT, "--words", "500", "--sections", "4", "--ctx", "4096",
                  "--speculate", "lookup")
    assert proc.returncode == 130, proc.stderr
    assert fake.loaded == [("q8_0", "lookup")]
    fake.on_piece = None
    (job_dir,) = (lw_home / "jobs").iterdir()
    result = json.loads(invoke("resume", job_dir.name, "--json", check=True).stdout)
    assert fake.loaded[-1] == ("q8_0", "lookup")
    assert result["settings"]["speculate"] == "lookup"
    assert {"drafted", "accepted", "acceptance_rate"} <= set(result)
    invoke("write", PROMPT, "--words", "300", "--sections", "2", check=True)
    assert fake.loaded[-1] == ("q8_0", "off")  # the CPU's default whether speculating or not
    done = json.loads(invoke("write", PROMPT, "--words", "300", "--sections", "2", "--json",
                             "--speculate", "lookup", "--kv-type", "q4_0", check=True).stdout)
    assert fake.loaded[-1] == ("q4_0", "lookup") and done["settings"]["speculate"] == "lookup"


def test_speculate_draft_takes_its_model_and_resume_can_change_it(lw_home, fake, ctrl_c,
                                                                  default_model):
    """--speculate draft MODEL (the default model as its own draft: the fake never loads it)
    is kept in the journal; resume --speculate lookup drops the draft model, and resume
    --speculate=draft MODEL takes it again."""
    def press(request: int, index: int, hooks) -> None:
        if request in (2, 3) and index == 10:
            ctrl_c()

    fake.on_piece = press
    draft = f"draft {default_model.name}"
    proc = invoke("write", PROMPT, "--words", "500", "--sections", "4", "--ctx", "4096",
                  "--speculate", "draft", str(default_model))
    assert proc.returncode == 130, proc.stderr
    assert fake.loaded == [("q8_0", draft)]
    (job_dir,) = (lw_home / "jobs").iterdir()
    assert invoke("resume", job_dir.name, "--speculate", "lookup").returncode == 130
    assert fake.loaded[-1] == ("q8_0", "lookup")
    fake.on_piece = None
    result = json.loads(invoke("resume", job_dir.name, "--json", "--speculate=draft",
                               str(default_model), check=True).stdout)
    assert fake.loaded[-1] == ("q8_0", draft)
    assert result["settings"]["speculate"] == "draft"
    assert result["settings"]["draft_model"] == str(default_model)


@pytest.mark.parametrize(("args", "parsed"), [
    (["--speculate", "draft", "d.gguf", "x"], ["--speculate", "draft", "--draft-model", "d.gguf",
                                               "x"]),
    (["--speculate=draft", "d.gguf"], ["--speculate=draft", "--draft-model", "d.gguf"]),
    (["--speculate", "draft", "--json"], ["--speculate", "draft", "--json"]),
    (["--speculate", "lookup", "x"], ["--speculate", "lookup", "x"]),
    (["--", "--speculate", "draft", "d"], ["--", "--speculate", "draft", "d"]),
])
def test_speculate_draft_model_is_the_options_second_value(args, parsed):
    from lwlocal.cli.options import draft_model_as_option

    assert draft_model_as_option(args) == parsed


@pytest.mark.parametrize(("extra", "message"), [
    (("--speculate", "draft"), "--speculate draft needs the draft model's GGUF"),
    (("--speculate", "draft", "/nowhere/d.gguf"), "/nowhere/d.gguf: no such file"),
    (("--speculate", "draft", "--json"), "--speculate draft needs the draft model's GGUF"),
])
def test_speculate_draft_refused_without_a_model(lw_home, fake, extra, message):
    proc = invoke("write", PROMPT, "--words", "300", *extra)
    assert proc.returncode == 1 and message in proc.stderr and not fake.loaded


@pytest.mark.parametrize(("extra", "message"), [
    (("--kv-type", "f16"), "--speculate lookup needs a quantized --kv-type"),
    (("--flash-attn", "off"), "--speculate lookup needs --flash-attn on"),
    (("--backend", "openai", "--base-url", "http://127.0.0.1:9/v1"),
     "--speculate lookup is for the local backend"),
])
def test_speculate_refused_where_the_output_would_change(lw_home, fake, extra, message):
    proc = invoke("write", PROMPT, "--words", "300", "--speculate", "lookup", *extra)
    assert proc.returncode == 1 and message in proc.stderr and not fake.loaded


def test_context_overflow_drops_old_sections_from_the_conversation_only(lw_home, tmp_path, fake):
    point = ("Lisbon sight number {}: what to see there, when to go, what it costs and how to "
             "get there by tram or on foot")  # the outline in every request: ~300 tokens
    sections = [{"title": f"Part {i}", "main_point": point.format(i), "words": 90}
                for i in range(1, 9)]
    path = tmp_path / "outline.json"
    path.write_text(json.dumps({"prompt": PROMPT, "words": 720, "sections": sections}))
    proc = invoke("write", "--outline", str(path), "--ctx", "1536", "--kv-type", "q8_0",
                  "--json", check=True)
    result = json.loads(proc.stdout)
    assert len(result["sections"]) == 8
    assert result["settings"]["kv_type"] == "q8_0"
    # without dropping, the final context would hold every generated token and the head
    assert result["context_tokens"] < result["generated_tokens"]
    # the oldest sections left the conversation (the last request lacks their text, the plan
    # stays), all at once rather than one per section; the journal and document keep them
    job = Job.open(result["job"], lw_home / "jobs")
    last = fake.requests[-1]
    assert "Part 1:" in last[0].content
    assert job.section_text(1) not in [m.content for m in last]
    firsts = [next(i for i in range(1, 9) if f"section {i} of 8" in request[0].content)
              for request in fake.requests if "Now write section" in request[-1].content]
    assert firsts == sorted(firsts) and len(set(firsts)) == 2  # one drop, then it held
    document = Path(result["document"]).read_text()
    assert all(f"## Part {i}\n\n{job.section_text(i)}" in document for i in range(1, 9))


def test_direct_mode_runs_in_the_context_the_planner_chose(fake):
    """The planner sizes a direct job's context from measured tokens per word; the writer must
    not ask for more room than that (it once refused every direct job over ~1,000 words)."""
    proc = invoke("write", PROMPT, "--words", "1200", "--mode", "direct", "--json", check=True)
    result = json.loads(proc.stdout)
    assert result["settings"]["n_ctx"] < 1200 * 2  # the plan's context, not a generous one
    assert fake.backends[0].n_ctx == result["settings"]["n_ctx"]
    assert result["words"] >= 0.8 * 1200 and len(result["sections"]) == 1


def test_the_length_comes_from_the_instruction_or_the_mode_default(lw_home, fake):
    asked = invoke("write", "Write a 150-word note about green tea.", "--mode", "direct",
                   "--json", check=True)
    assert "150 words, read from the instruction ('150-word')" in asked.stderr
    result = json.loads(asked.stdout)
    assert result["planned_words"] == 150 and result["words"] >= 0.8 * 150
    assert result["settings"]["words_source"] == "instruction"
    assert Job.open(result["job"], lw_home / "jobs").meta.settings.words_source == "instruction"
    default = invoke("write", PROMPT, "--outline-only", "--json", check=True)
    assert "no length in the instruction: 2,000 words, the agentwrite default (--words sets " \
        "it)" in default.stderr
    assert json.loads(default.stdout)["words"] == 2000


def test_a_resumed_writer_moves_the_window_where_the_uninterrupted_one_did(tmp_path):
    """A local backend moves its KV cache's window where the writer leaves sections out; a
    resumed writer replays the moves made before the section it goes on with (and none after
    the last section it writes: a rewrite of an early section evaluates nothing for later
    ones)."""
    from lwlocal.runtime.chat import NO_HOOKS, Hooks, Message, WindowBackend
    from lwlocal.runtime.engine import Sampling
    from lwlocal.write.outline import Outline, Section
    from lwlocal.write.settings import JobSettings
    from lwlocal.write.writer import Writer
    from tests.support.fake_chat import FakeChat

    class MovingChat(FakeChat):
        def __init__(self) -> None:
            super().__init__(n_ctx=1536)
            self.moves: list[tuple[int, str]] = []

        def move_window(self, old: list[Message], new: list[Message],
                        hooks: Hooks = NO_HOOKS) -> bool:
            self.moves.append((len(old) - len(new), new[0].content.split("Now write ")[1]))
            return True

    point = ("Lisbon sight number {}: what to see there, when to go, what it costs and how to "
             "get there by tram or on foot")
    outline = Outline(PROMPT, 720, [Section(f"Part {i}", point.format(i), 90)
                                    for i in range(1, 9)])
    job = Job.create(tmp_path, JobSettings(PROMPT, 720))
    job.save_outline(outline)
    whole = MovingChat()
    assert isinstance(whole, WindowBackend)
    Writer(whole, job, outline, Sampling()).run()
    assert whole.moves and all(dropped > 0 for dropped, _ in whole.moves)

    job.section_path(8).unlink()  # as a stop before the last section leaves the job
    resumed = MovingChat()
    Writer(resumed, job, outline, Sampling()).run()
    assert resumed.moves == whole.moves
    rewrite = MovingChat()
    Writer(rewrite, job, outline, Sampling(), rewrite={1}).run()
    assert rewrite.moves == []
