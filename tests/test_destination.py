"""Full or unwritable destinations: found before the work where they can be, and a disk that
fills up during it is one line at any point, with no partial file and the job left resumable.
A full disk is simulated by failing fsync (ENOSPC) for files under a folder, and by reporting
no free space there."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import gguf
import numpy as np
import pytest

from lwlocal.cli import main
from lwlocal.quant.imatrix_file import ImportanceMatrix, save
from lwlocal.util import destination
from lwlocal.util.destination import DestinationError, check_destination, replacing
from lwlocal.util.paths import jobs_dir
from lwlocal.write.journal import Job
from tests.support.fake_openai import fake_server

NO_SPACE = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
REAL_FSYNC = os.fsync
Where = Callable[[str], bool]


def under(folder: Path) -> Where:
    return lambda path: path.startswith(f"{folder}{os.sep}")


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> Callable[[Where], None]:
    """``fill(where)``: from then on fsync of a file whose path ``where`` accepts fails as on
    a full disk."""
    def fill(where: Where) -> None:
        def fsync(fd: int) -> None:
            if where(os.readlink(f"/proc/self/fd/{fd}")):
                raise NO_SPACE
            REAL_FSYNC(fd)

        monkeypatch.setattr(os, "fsync", fsync)

    return fill


@pytest.fixture
def no_room(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """``no_room(folder)``: the folder (and what is under it) reports no free space."""
    real = shutil.disk_usage

    def empty(folder: Path) -> None:
        def disk_usage(path: os.PathLike[str] | str) -> shutil._ntuple_diskusage:
            usage = real(path)
            inside = Path(path) == folder or under(folder)(str(path))
            return usage._replace(free=0) if inside else usage

        monkeypatch.setattr(destination.shutil, "disk_usage", disk_usage)

    return empty


def invoke(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
           *args: str) -> tuple[int, list[str]]:
    """Run ``lwlocal ARGS`` in this process (so that its writes can be broken): the exit
    status and the lines printed on stderr."""
    monkeypatch.setattr(sys, "argv", ["lwlocal", *args])
    capsys.readouterr()
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        main()
        status = 0
    except SystemExit as exc:
        status = int(exc.code or 0)
    finally:
        signal.signal(signal.SIGTERM, sigterm)
    return status, capsys.readouterr().err.strip().splitlines()


@pytest.fixture
def outline(tmp_path: Path) -> Path:
    path = tmp_path / "outline.json"
    path.write_text(json.dumps({"prompt": "A guide to harbours.", "words": 30, "sections": [
        {"title": "Morning", "main_point": "Boats leave.", "words": 15},
        {"title": "Evening", "main_point": "Boats return.", "words": 15}]}))
    return path


def write_args(url: str, outline: Path, output: Path) -> list[str]:
    return ["write", "--outline", str(outline), "--backend", "openai", "--base-url", url,
            "-o", str(output)]


def only_job() -> Job:
    (folder,) = jobs_dir().iterdir()
    return Job.open(str(folder), jobs_dir())


@pytest.mark.parametrize("full", ["output", "jobs"])
def test_no_room_is_found_before_any_work(full, tmp_path, lw_home, outline, no_room, capsys,
                                          monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    jobs_dir().mkdir(parents=True)
    no_room(out if full == "output" else jobs_dir())
    with fake_server(["ok"]) as server:
        status, lines = invoke(capsys, monkeypatch, *write_args(server.url, outline,
                                                                 out / "doc.md"))
    assert status == 1 and len(lines) == 1, lines
    assert lines[0].startswith("lwlocal: error: ") and "0.0 MiB free" in lines[0]
    assert server.requests == [] and not any(out.iterdir()) and not any(jobs_dir().iterdir())


def test_output_that_fills_up_after_the_job_is_one_line(tmp_path, lw_home, outline, full_disk,
                                                         capsys, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    full_disk(under(out))
    with fake_server(["ok"]) as server:
        status, lines = invoke(capsys, monkeypatch, *write_args(server.url, outline,
                                                                 out / "doc.md"))
    assert status == 1 and len(lines) == 1, lines
    job = only_job()
    assert lines[0] == (f"lwlocal: error: {out / 'doc.md'}: could not be written (No space "
                        f"left on device); the document is kept in {job.dir / 'document.md'}")
    assert job.state == "done" and not any(out.iterdir())


@pytest.mark.parametrize("everything", [False, True], ids=["sections", "then-job.json-too"])
def test_jobs_folder_that_fills_up_leaves_the_job_resumable(everything, tmp_path, lw_home,
                                                            outline, full_disk, capsys,
                                                            monkeypatch):
    failed: list[str] = []

    def full(path: str) -> bool:  # the first section's file, then (maybe) everything
        if "/sections/" in path or (everything and failed):
            failed.append(path)
            return True
        return False

    full_disk(full)
    out = tmp_path / "doc.md"
    with fake_server(["ok"]) as server:
        status, lines = invoke(capsys, monkeypatch, *write_args(server.url, outline, out))
        job = only_job()
        assert status == 1 and len(lines) == 1, lines
        assert lines[0] == (f"lwlocal: error: {job.section_path(1)}: could not be written (No "
                            f"space left on device); job {job.id} is kept: make room, then "
                            f"`lwlocal resume {job.id}`")
        assert job.finished() == [] and not out.exists()
        assert not list(job.dir.rglob("*.tmp"))
        # job.json took the state, or (everything full) still says writing, by this process
        assert job.meta.state == ("writing" if everything else "interrupted")
        monkeypatch.setattr(os, "fsync", REAL_FSYNC)  # room again
        status, lines = invoke(capsys, monkeypatch, "resume", job.id, "-o", str(out))
    assert status == 0, lines
    assert Job.open(job.id, jobs_dir()).state == "done" and out.read_text().startswith("## ")


def test_export_to_a_disk_that_fills_up(tmp_path, lw_home, outline, full_disk, no_room,
                                        capsys, monkeypatch):
    with fake_server(["ok"]) as server:
        assert invoke(capsys, monkeypatch, *write_args(server.url, outline,
                                                       tmp_path / "doc.md"))[0] == 0
    job = only_job()
    out = tmp_path / "out"
    out.mkdir()
    full_disk(under(out))
    status, lines = invoke(capsys, monkeypatch, "export", job.id, "--format", "html", "-o",
                           str(out / "doc.html"))
    assert status == 1 and lines == [f"lwlocal: error: {out / 'doc.html'}: could not be "
                                     "written (No space left on device)"]
    no_room(out)
    status, lines = invoke(capsys, monkeypatch, "export", job.id, "-o", str(out / "doc.md"))
    assert status == 1 and len(lines) == 1 and "0.0 MiB free" in lines[0]
    assert not any(out.iterdir())


def test_importance_matrix_on_a_full_disk_leaves_no_partial_file(lw_home, tmp_path, monkeypatch):
    matrix = ImportanceMatrix()
    matrix.add("blk.0.attn_q.weight", np.ones((1, 64)), 16)

    def no_space(self: gguf.GGUFWriter, *args: object, **kwargs: object) -> None:
        raise NO_SPACE

    monkeypatch.setattr(gguf.GGUFWriter, "write_tensors_to_file", no_space)
    with pytest.raises(DestinationError, match=r"im.gguf: could not be written \(No space"):
        save(matrix, tmp_path / "im.gguf")
    assert [p for p in tmp_path.iterdir() if p != lw_home] == []  # its log aside


def test_a_failed_replacement_keeps_the_old_file(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("old")
    with pytest.raises(DestinationError, match="f.txt: could not be written"), \
            replacing(path) as tmp:
        tmp.write_text("half")
        raise NO_SPACE
    with pytest.raises(KeyboardInterrupt), replacing(path) as tmp:
        tmp.write_text("half")
        raise KeyboardInterrupt
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]


@pytest.mark.parametrize("path, problem", [
    ("{tmp}", "is a folder, not a file"),
    ("{tmp}/missing/f.md", "folder {tmp}/missing does not exist"),
    ("/dev/null", "not a regular file"),
    ("/proc/f.md", "cannot write in /proc"),
])
def test_destinations_that_cannot_take_a_file(tmp_path, path, problem):
    with pytest.raises(DestinationError) as info:
        check_destination(Path(path.format(tmp=tmp_path)))
    assert problem.format(tmp=tmp_path) in str(info.value)
    assert list(tmp_path.iterdir()) == []  # the probe is gone


@pytest.mark.parametrize("fills", ["results", "everything"])
def test_bench_on_a_disk_that_fills_up_is_one_line(fills, tmp_path, lw_home, full_disk,
                                                   fake_model, capsys, monkeypatch):
    """The bench's results file (or its whole folder) cannot be written: one line naming the
    file, exit 1, no line half-written; once there is room the same command goes on."""
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"id": "p1", "length": 60,
                                   "prompt": "Write a 60-word note about tea."}) + "\n")
    out = tmp_path / "bench"
    args = ["bench", "--prompts", str(prompts), "--mode", "direct", "-o", str(out)]
    results = out / "results.jsonl"
    full_disk((lambda path: path == str(results)) if fills == "results" else under(out))
    status, lines = invoke(capsys, monkeypatch, *args)
    assert status == 1 and len(lines) == 1, lines
    assert lines[0] == (f"lwlocal: error: {results}: could not be written "
                        f"({os.strerror(errno.ENOSPC)})")
    assert not results.exists() or results.read_text() == ""
    monkeypatch.setattr(os, "fsync", REAL_FSYNC)  # room again
    status, lines = invoke(capsys, monkeypatch, *args, "--json")
    assert status == 0, lines
    assert [json.loads(line)["error"] for line in results.read_text().splitlines()] == [None]


@pytest.mark.parametrize("line", ["{", "[]", '{"model": "m"}', "\udcff"])
def test_a_damaged_results_file_is_one_line(line, tmp_path, lw_home, fake_model, capsys,
                                           monkeypatch):
    out = tmp_path / "bench"
    out.mkdir()
    (out / "results.jsonl").write_text(line + "\n", errors="surrogateescape")
    status, lines = invoke(capsys, monkeypatch, "bench", "--mode", "direct", "--limit", "1",
                           "-o", str(out))
    assert status == 1 and len(lines) == 1, lines
    assert lines[0].startswith(f"lwlocal: error: {out / 'results.jsonl'}")
