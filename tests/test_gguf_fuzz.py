"""Damaged GGUF files give one line, never a traceback or a C abort: the header reader checks
every field, and a vocabulary llama.cpp would abort on is refused before llama.cpp loads it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from gguf import GGUFReader

from lwlocal.models.gguf_checks import check_model
from lwlocal.models.gguf_file import file_quant, gguf_metadata, read_gguf
from lwlocal.util.errors import LwlocalError
from tests.support.bounds import HANG
from tests.support.cli import invoke, run_cli
from tests.support.gguf_copies import header_of, sparse_copy, with_uint32
from tests.support.gguf_fuzz import DUPLICATE_TOKEN_AT

ROOT = Path(__file__).resolve().parents[1]
SEED, CASES = 20, 150


def test_the_reader_agrees_with_gguf_py(default_model):
    ours, theirs = read_gguf(default_model), GGUFReader(default_model)
    assert [(t.name, t.shape, t.tensor_type, t.n_bytes, t.offset) for t in ours.tensors] == [
        (t.name, tuple(int(d) for d in t.shape), t.tensor_type, int(t.n_bytes),
         int(t.data_offset)) for t in theirs.tensors]
    scalars = {key: field.contents() for key, field in theirs.fields.items()
               if field.types[0].name != "ARRAY" and not key.startswith("GGUF.")}
    assert gguf_metadata(default_model) == scalars
    check_model(default_model)


def test_seeded_damaged_copies_give_one_line_or_work(default_model, tmp_path, lw_home):
    """Byte flips in the first 4 KiB and 64 KiB, cuts in the first 2 MiB, a file of only the
    magic and a duplicated token, each through `inspect` and `plan` in one process."""
    proc = subprocess.run(
        [sys.executable, "-m", "tests.support.gguf_fuzz", str(default_model), str(tmp_path),
         str(SEED), str(CASES)], cwd=ROOT, capture_output=True, text=True, timeout=HANG)
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    runs = list(zip(lines[::2], lines[1::2], strict=False))
    assert proc.returncode == 0 and len(lines) % 2 == 0, (
        f"the runner died ({proc.returncode}) at {lines[-1]}: {proc.stderr[-2000:]}")
    outcomes: dict[str, int] = {}
    for run, result in runs:
        err = result["stderr"].strip().splitlines()
        outcome = "works" if result["code"] == 0 else "refused"
        assert result["code"] in (0, 1), f"{run}: {result['stderr']}"
        if result["code"] == 1:
            assert len(err) == 1 and err[0].startswith(f"lwlocal: error: {run['file']}: "), (
                run, result["stderr"])
        outcomes[f"{run['command']} {outcome}"] = outcomes.get(f"{run['command']} {outcome}",
                                                               0) + 1
    assert len(runs) == 2 * (CASES + 3)
    print(outcomes)
    by_case = {(run["case"], run["command"]): result["stderr"] for run, result in runs}
    assert "not a valid GGUF" in by_case[("magic only", "inspect")]
    assert "tokens 987 and 41790 are both 'Ġpav'" in by_case[("duplicate token", "plan")]


@pytest.fixture(scope="module")
def duplicate_token(default_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default model with `printf v | dd of=f.gguf bs=1 seek=12595 conv=notrunc` done."""
    header = bytearray(header_of(default_model))
    header[DUPLICATE_TOKEN_AT] = ord("v")
    return sparse_copy(bytes(header), default_model.stat().st_size,
                       tmp_path_factory.mktemp("dup") / "f.gguf")


def test_a_duplicate_token_is_refused_before_llama_cpp_loads_it(duplicate_token, lw_home):
    with pytest.raises(LwlocalError, match="tokens 987 and 41790 are both"):
        check_model(duplicate_token)
    for args in (["plan", str(duplicate_token), "--words", "500"],
                 ["write", "Tea", "--words", "100", "--model", str(duplicate_token)]):
        proc = run_cli(*args, env_home=lw_home)
        assert proc.returncode == 1, proc
        assert proc.stderr == (f"lwlocal: error: {duplicate_token}: not a valid GGUF (tokens "
                               "987 and 41790 are both 'Ġpav')\n")


def test_a_file_of_only_the_magic(tmp_path, lw_home):
    magic = tmp_path / "magic.gguf"
    magic.write_bytes(b"GGUF")
    proc = run_cli("write", "Tea", "--words", "100", "--model", str(magic), env_home=lw_home)
    assert proc.returncode == 1
    assert proc.stderr == (f"lwlocal: error: {magic}: not a valid GGUF (the header runs past the "
                           "end of the 4-byte file)\n")
    assert file_quant(magic) == "invalid"  # as `lwlocal models` lists it


@pytest.mark.parametrize("length", [0xFFFFFFFF, 2**24 + 1])
def test_a_context_length_past_llama_cpp_is_refused(length, default_model, tmp_path, lw_home,
                                                    fake_model):
    """A trained context of 0xffffffff: llama.cpp reads it as -1, and llama-cpp-python sizes a
    buffer of it for each tokenization; `plan` refuses it as `write` does, in one line."""
    header = with_uint32(header_of(default_model), "llama.context_length", length)
    model = sparse_copy(header, default_model.stat().st_size, tmp_path / "long.gguf")
    for args in (["plan", str(model), "--words", "500"],
                 ["write", "Tea", "--words", "100", "--model", str(model)]):
        proc = invoke(*args)
        assert proc.returncode == 1 and proc.stdout == "", proc
        assert proc.stderr == (f"lwlocal: error: {model}: not a valid GGUF (llama.context_length "
                               f"is {length}, not a positive whole number up to 16777216)\n")
    assert fake_model.requests == []
