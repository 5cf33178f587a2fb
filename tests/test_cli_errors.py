"""Bad input: one line naming the problem, a non-zero exit, no file written (in this process,
on the fake chat backend, so that a check that let bad input through writes nothing real)."""

from pathlib import Path

import pytest

from tests.support.cli import invoke


@pytest.mark.parametrize("args,problem", [
    (["write", "p", "--words", "100", "--model", "no-such-model"], "unknown model 'no-such-model'"),
    (["write", "p", "--words", "100", "--model", "{tmp}/missing.gguf"], "no such file"),
    (["write", "p", "--words", "100", "--model", "{tmp}/fake.gguf"], "not a GGUF file"),
    (["write", "p", "--words", "0"], "--words 0: must be a positive"),
    (["write", "p", "--words", "-5"], "--words -5: must be a positive"),
    (["write", "p", "--words", "90000"], "more than AgentWrite's"),
    (["write", "p", "--words", "9000", "--mode", "direct"],
     "9,000 words need about 13,824 tokens of context; smollm2-135m takes at most 8,192: ask "
     "for fewer --words"),
    (["write", "Write 90,000 words on tea."], "the instruction's 90,000 words: more than "
                                             "AgentWrite's"),
    (["write", "p", "--words", "100", "--outline", "{tmp}/bad.json"], "outline is not valid JSON"),
    (["write", "p", "--words", "100", "--outline", "{tmp}/none.json"], "cannot read outline"),
    (["write", "p", "--words", "100", "-o", "{tmp}/no/such/dir/out.md"], "does not exist"),
    (["write", "p", "--words", "100", "-o", "{tmp}"], "is a folder"),
    (["resume", "nope"], "nope: no such job"),
    # arguments checked at the edge: finite, in range
    (["write", "p", "--words", "100", "--ctx", "0"], "--ctx 0: must be at least 64"),
    (["write", "p", "--words", "100", "--n-batch", "0"], "--n-batch 0: must be at least 1"),
    (["write", "p", "--words", "100", "--threads", "100000"],
     "--threads 100000: must be between 1 and 512"),
    (["write", "p", "--words", "100", "--threads", "0"], "--threads 0: must be between"),
    (["write", "p", "--words", "100", "--temperature", "nan"],
     "--temperature nan: must be a finite number"),
    (["write", "p", "--words", "100", "--temperature", "-0.5"], "--temperature -0.5: must be"),
    (["write", "p", "--words", "100", "--temperature", "inf"], "--temperature inf: must be"),
    (["write", "p", "--words", "100", "--top-p", "1.5"], "--top-p 1.5: must be"),
    (["write", "p", "--words", "100", "--repeat-penalty", "0"], "--repeat-penalty 0.0: must be"),
    (["write", "p", "--words", "10000000", "--mode", "direct"], "more than 1000000 words"),
    (["write", "--outline", "{tmp}/huge.json"], "word count inf is not a finite number"),
    (["batch", "{tmp}/none.jsonl", "-o", "{tmp}/runs", "--threads", "100000"], "--threads"),
    (["quantize", "{tmp}/fake.gguf", "-o", "{tmp}/q.gguf", "--type", "Q4_K_M", "--threads",
      "100000"], "--threads 100000: must be between 1 and 512"),
    (["convert", "{tmp}", "-o", "{tmp}/c.gguf", "--threads", "-1"], "--threads -1"),
    (["imatrix", "{tmp}/fake.gguf", "-o", "{tmp}/im.gguf", "--chunks", "0"],
     "--chunks 0: must be at least 1"),
    (["imatrix", "{tmp}/fake.gguf", "-o", "{tmp}/im.gguf", "--threads", "100000"],
     "--threads 100000"),
    (["eval-quant", "{tmp}/fake.gguf", "{tmp}/fake.gguf", "--chunks", "0"],
     "--chunks 0: must be at least 1"),
    (["eval-quant", "{tmp}/fake.gguf", "{tmp}/fake.gguf", "--ctx", "1"],
     "--ctx 1: tokens per chunk must be between 64 and"),
    # destinations that cannot take a file, found before any work
    (["write", "p", "--words", "100", "-o", "/proc/doc.md"], "cannot write in /proc"),
    (["write", "p", "--words", "100", "-o", "/dev/null"], "/dev/null: not a regular file"),
    (["export", "anyjob", "-o", "/proc/doc.html"], "cannot write in /proc"),
    (["imatrix", "{tmp}/fake.gguf", "-o", "/proc/im.gguf"], "cannot write in /proc"),
    (["quantize", "{tmp}/fake.gguf", "-o", "/proc/q.gguf", "--type", "Q4_K_M"],
     "cannot write in /proc"),
    (["batch", "{tmp}/none.jsonl", "-o", "/proc/runs"], "cannot write in /proc"),
    # a length past any number (json reads 1e400 as infinity)
    (["batch", "{tmp}/inf.jsonl", "-o", "{tmp}/runs"], "inf.jsonl:1: not a prompt line"),
    (["bench", "--prompts", "{tmp}/inf.jsonl", "-o", "{tmp}/b"], "inf.jsonl:1: not a prompt"),
    # -o makes at most its last folder: a mistyped path makes no tree
    (["batch", "{tmp}/p.jsonl", "-o", "{tmp}/a/b/c"], "/a/b does not exist (only the last folder"),
    (["bench", "--prompts", "{tmp}/p.jsonl", "-o", "{tmp}/a/b/c"], "/a/b does not exist"),
    (["batch", "{tmp}/p.jsonl", "-o", "{tmp}/p.jsonl"], "p.jsonl: not a folder"),
])
def test_bad_input_is_one_line_and_nonzero(tmp_path, lw_home, fake_model, args, problem):
    (tmp_path / "fake.gguf").write_text("not a model")
    (tmp_path / "bad.json").write_text("{")
    (tmp_path / "inf.jsonl").write_text('{"id": "a", "prompt": "p", "length": 1e400}\n')
    (tmp_path / "p.jsonl").write_text('{"id": "a", "prompt": "p", "length": 100}\n')
    (tmp_path / "huge.json").write_text(
        '{"prompt": "p", "words": 100, "sections": [{"main_point": "a", "words": 1e400}]}')
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    def files() -> list[Path]:  # lwlocal's home (its llama.cpp log) aside; its jobs below
        return sorted(p for p in tmp_path.rglob("*") if not p.is_relative_to(lw_home))

    before = files()
    proc = invoke(*args)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and problem in lines[0], proc.stderr
    assert lines[0].startswith("lwlocal: error: ")
    assert proc.stdout == ""
    assert files() == before  # nothing half-written
    assert not (lw_home / "jobs").exists() or not any((lw_home / "jobs").iterdir())
    assert fake_model.requests == []
