"""No command writes its output over one of its inputs: the same file by any name (hard link,
symbolic link, ``..``) or a file of an input folder is refused in one line, input untouched."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

from lwlocal.cli import main
from lwlocal.util.errors import LwlocalError
from lwlocal.util.overwrite import refuse_input_as_output
from lwlocal.util.paths import jobs_dir
from lwlocal.write.journal import Job
from lwlocal.write.outline import Outline, Section
from lwlocal.write.settings import JobSettings
from tests.support.cli import run_cli
from tests.support.gguf_copies import header_of, sparse_copy


def run_here(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run ``lwlocal ARGS`` in this process; its exit code and standard error."""
    saved = sys.argv
    sys.argv = ["lwlocal", *args]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = saved
    return code, capsys.readouterr().err


def digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with a hash of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def model_header(default_model: Path) -> tuple[bytes, int]:
    return header_of(default_model), default_model.stat().st_size


@pytest.fixture
def model(model_header: tuple[bytes, int], tmp_path: Path) -> Path:
    """A copy of the default model's header and tensor table (weights all zero)."""
    return sparse_copy(*model_header, tmp_path / "model.gguf")


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    folder = tmp_path / "ck"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    (folder / "tokenizer.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"weights")
    return folder


def test_the_same_file_by_any_name_is_refused(tmp_path):
    source = tmp_path / "in.gguf"
    source.write_bytes(b"model")
    (tmp_path / "sub").mkdir()
    os.link(source, tmp_path / "hard.gguf")
    (tmp_path / "soft.gguf").symlink_to(source)
    for output in (source, tmp_path / "hard.gguf", tmp_path / "soft.gguf",
                   tmp_path / "sub" / ".." / "in.gguf"):
        with pytest.raises(LwlocalError, match=f"^output {output} is the input model {source}$"):
            refuse_input_as_output(output, {"input model": source, "importance matrix": None})
    refuse_input_as_output(tmp_path / "new.gguf", {"input model": source})
    assert source.read_bytes() == b"model"


def test_a_file_of_an_input_folder_is_refused_a_new_one_is_not(checkpoint, tmp_path):
    weights = checkpoint / "model.safetensors"
    os.link(weights, tmp_path / "elsewhere.bin")
    for output in (weights, tmp_path / "elsewhere.bin", checkpoint):
        with pytest.raises(LwlocalError, match="input checkpoint"):
            refuse_input_as_output(output, {"input checkpoint": checkpoint})
    refuse_input_as_output(checkpoint / "model.gguf", {"input checkpoint": checkpoint})


def assert_refused(capsys, args: list[str], problem: str, kept: Path,
                   home: Path | None = None) -> None:
    """``lwlocal ARGS`` exits 1 with one line naming ``problem`` and leaves ``kept`` as it
    was, with no file added. In this process, or with ``home`` in a child as a user runs it
    (for commands that load a model: llama.cpp logs to this process's captured stderr)."""
    before = digest(kept)
    if home is None:
        code, err = run_here(capsys, *args)
    else:
        proc = run_cli(*args, env_home=home)
        code, err = proc.returncode, proc.stderr
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and problem in lines[0], err
    assert lines[0].startswith("lwlocal: error: output ")
    assert digest(kept) == before


def test_imatrix_and_quantize_refuse_their_inputs(capsys, model, tmp_path):
    os.link(model, tmp_path / "hard.gguf")
    matrix = tmp_path / "imatrix.gguf"
    matrix.write_bytes(b"GGUF matrix")
    assert_refused(capsys, ["imatrix", str(model), "-o", str(model)],
                   f"is the input model {model}", tmp_path)
    assert_refused(capsys, ["imatrix", str(model), "-o", str(tmp_path / "hard.gguf")],
                   f"is the input model {model}", tmp_path)
    assert_refused(capsys, ["quantize", str(model), "-o", str(matrix), "--type", "Q4_0",
                            "--imatrix", str(matrix)], f"is the importance matrix {matrix}",
                   tmp_path)
    assert_refused(capsys, ["quantize", str(model), "-o", str(tmp_path / "hard.gguf"),
                            "--type", "Q8_0"], f"is the input model {model}", tmp_path)


@pytest.mark.parametrize("extra", [[], ["--outtype", "Q4_0"]])
def test_convert_refuses_a_file_of_its_checkpoint(capsys, checkpoint, tmp_path, extra):
    os.link(checkpoint / "config.json", tmp_path / "linked.json")
    for output in (checkpoint / "model.safetensors", tmp_path / "linked.json"):
        assert_refused(capsys, ["convert", str(checkpoint), "-o", str(output), *extra],
                       f"is a file of the input checkpoint {checkpoint}", tmp_path)


def test_gptq_refuses_its_checkpoint_folder(capsys, checkpoint, tmp_path):
    assert_refused(capsys, ["quantize-gptq", str(checkpoint), "-o", str(checkpoint),
                            "--group-size", "-1"],
                   f"is the input checkpoint {checkpoint}", tmp_path)


@pytest.fixture
def job(model: Path) -> Job:
    job = Job.create(jobs_dir(), JobSettings("Tea", 20, model=str(model)))
    job.save_outline(Outline("Tea", 20, [Section("Leaves", "which", 10)]))
    job.save_section(1, "Sencha is bright.")
    return job


def test_export_and_resume_refuse_a_file_of_the_job(capsys, job, lw_home):
    for name in ("outline.json", "sections/001.md"):
        assert_refused(capsys, ["export", job.id, "-o", str(job.dir / name)],
                       f"is a file of the job {job.dir}", lw_home)
    assert_refused(capsys, ["resume", job.id, "-o", str(job.dir / "job.json")],
                   f"is a file of the job {job.dir}", lw_home, home=lw_home)


def test_write_refuses_its_model_and_outline(capsys, model, tmp_path):
    outline = tmp_path / "outline.json"
    outline.write_text(Outline("Tea", 60, [Section("Leaves", "which", 60)]).to_json())
    assert_refused(capsys, ["write", "--outline", str(outline), "-o", str(outline)],
                   f"is the outline {outline}", tmp_path)
    assert_refused(capsys, ["write", "Tea", "--words", "60", "--model", str(model),
                            "-o", str(model)], f"is the model {model}", tmp_path)


def test_batch_and_bench_refuse_to_replace_their_prompts(capsys, tmp_path):
    prompts = tmp_path / "report.json"
    prompts.write_text('{"id": "a", "prompt": "Tea", "length": 50}\n')
    assert_refused(capsys, ["batch", str(prompts), "-o", str(tmp_path)],
                   f"is the prompts {prompts}", tmp_path)
    summary = tmp_path / "summary.json"
    prompts.rename(summary)
    assert_refused(capsys, ["bench", "--prompts", str(summary), "-o", str(tmp_path)],
                   f"is the prompts {summary}", tmp_path)
