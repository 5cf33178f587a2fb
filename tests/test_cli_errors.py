"""Bad input: one line naming the problem, a non-zero exit, no file written (in this process,
on the fake chat backend, so that a check that let bad input through writes nothing real)."""

import pytest

from tests.support.cli import invoke


@pytest.mark.parametrize("args,problem", [
    (["write", "p", "--words", "100", "--model", "no-such-model"], "unknown model 'no-such-model'"),
    (["write", "p", "--words", "100", "--model", "{tmp}/missing.gguf"], "no such file"),
    (["write", "p", "--words", "100", "--model", "{tmp}/fake.gguf"], "not a GGUF file"),
    (["write", "p", "--words", "0"], "--words 0: must be a positive"),
    (["write", "p", "--words", "-5"], "--words -5: must be a positive"),
    (["write", "p", "--words", "90000"], "more than AgentWrite's"),
    (["write", "p", "--words", "9000", "--mode", "direct"], "direct mode needs about"),
    (["write", "p"], "--words is required"),
    (["write", "p", "--words", "100", "--outline", "{tmp}/bad.json"], "outline is not valid JSON"),
    (["write", "p", "--words", "100", "--outline", "{tmp}/none.json"], "cannot read outline"),
    (["write", "p", "--words", "100", "-o", "{tmp}/no/such/dir/out.md"], "does not exist"),
    (["write", "p", "--words", "100", "-o", "{tmp}"], "is a folder"),
    (["resume", "nope"], "nope: no such job"),
])
def test_bad_input_is_one_line_and_nonzero(tmp_path, lw_home, fake_model, args, problem):
    (tmp_path / "fake.gguf").write_text("not a model")
    (tmp_path / "bad.json").write_text("{")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    before = sorted(tmp_path.rglob("*"))
    proc = invoke(*args)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and problem in lines[0], proc.stderr
    assert lines[0].startswith("lwlocal: error: ")
    assert proc.stdout == ""
    assert sorted(tmp_path.rglob("*")) == before  # nothing half-written
    assert not (lw_home / "jobs").exists() or not any((lw_home / "jobs").iterdir())
    assert fake_model.requests == []
