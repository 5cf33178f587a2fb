"""A job reads only its own files: job paths resolve under the jobs folder, section files are
regular files of their job (a link is refused, never followed, for reading or writing), a
section that is not UTF-8 is one line in ``resume`` and ``export``, and ``jobs`` lists every
entry of the jobs folder, a broken job as broken with why (the fault trial of issue 29)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from lwlocal.util.errors import LwlocalError
from lwlocal.util.paths import jobs_dir
from lwlocal.write.journal import BrokenJob, Job, list_jobs
from lwlocal.write.outline import Outline, Section
from lwlocal.write.settings import JobSettings
from tests.support.cli import invoke

OUTLINE = Outline("A guide to tea.", 20, [Section("Leaves", "which", 10),
                                            Section("Water", "how hot", 10)])


def make_job(root: Path, name: str = "tea") -> Job:
    """An interrupted job with its outline and its first section written."""
    job = Job.create(root, JobSettings("A guide to tea.", 20), name=name)
    job.save_outline(OUTLINE)
    job.save_section(1, "Sencha is bright and grassy.")
    job.update(state="interrupted")
    return job


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A file outside every job, which no command may read or change."""
    path = tmp_path / "secret.txt"
    path.write_text("do not read me\n")
    return path


def one_line(proc, *problems: str) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("lwlocal: error: ") and all(p in lines[0] for p in problems), lines
    return lines[0]


@pytest.mark.parametrize("command", ["resume", "export"])
def test_a_job_outside_the_jobs_folder_is_refused(command, tmp_path, lw_home, fake_model):
    elsewhere = make_job(tmp_path / "elsewhere")
    linked = jobs_dir() / "linked"
    jobs_dir().mkdir(parents=True)
    linked.symlink_to(elsewhere.dir)
    out = tmp_path / "doc.md"
    for ref in (str(elsewhere.dir), str(linked), f"{jobs_dir()}/../../elsewhere/tea"):
        args = [command, ref, "-o", str(out)]
        one_line(invoke(*args), f"{ref}: not a job of {jobs_dir()}")
    assert not out.exists() and fake_model.requests == []


def test_a_section_that_links_outside_its_job_is_never_read(tmp_path, lw_home, secret,
                                                           fake_model):
    job = make_job(jobs_dir())
    job.section_path(1).unlink()
    job.section_path(1).symlink_to(secret)
    out = tmp_path / "doc.md"
    one_line(invoke("export", "tea", "-o", str(out)), f"{job.section_path(1)}: a link")
    one_line(invoke("resume", "tea"), f"{job.section_path(1)}: a link")
    assert not out.exists() and fake_model.requests == []
    assert secret.read_text() == "do not read me\n"


def test_sections_in_a_linked_folder_are_refused(tmp_path, lw_home, fake_model):
    job = make_job(jobs_dir())
    moved = tmp_path / "moved-sections"
    shutil.move(job.dir / "sections", moved)
    (job.dir / "sections").symlink_to(moved)
    one_line(invoke("export", "tea", "-o", str(tmp_path / "doc.md")),
             f"{job.dir / 'sections'}: a link")


def test_a_partial_file_that_is_a_link_is_not_written_through(lw_home, secret):
    job = make_job(jobs_dir())
    job.partial_path(2).symlink_to(secret)
    with pytest.raises(LwlocalError, match="a link; a job writes only its own files"):
        job.open_partial(2)
    assert secret.read_text() == "do not read me\n"


def test_a_section_that_is_not_utf8_is_one_line(tmp_path, lw_home, fake_model):
    job = make_job(jobs_dir())
    job.section_path(1).write_bytes(b"Sencha \xff\xfe is bright.")
    out = tmp_path / "doc.md"
    one_line(invoke("resume", "tea"), f"{job.section_path(1)}: not UTF-8 text (byte 7)")
    one_line(invoke("export", "tea", "-o", str(out)), "not UTF-8")
    assert not out.exists() and fake_model.requests == []
    job.section_path(1).write_text("Sencha is bright.")
    job.partial_path(2).write_bytes(b"\x80")
    one_line(invoke("resume", "tea"), f"{job.partial_path(2)}: not UTF-8 text (byte 0)")


def link(target: Callable[[Path], Path]) -> Callable[[Path], None]:
    """Replace a job's file by a link to ``target(folder)``."""
    def make(path: Path) -> None:
        path.unlink()
        path.symlink_to(target(path))
    return make


def in_folder(name: str, change: Callable[[Path], object]) -> Callable[[Path], None]:
    return lambda folder: change(folder / name) and None


# (how a job is broken, what `jobs` says of it): every kind is listed, none hidden
BROKEN: list[tuple[str, Callable[[Path], object], str]] = [
    ("no-meta", in_folder("job.json", Path.unlink), "not a job (no job.json)"),
    ("meta-not-json", in_folder("job.json", lambda p: p.write_text("{")),
     "unreadable job metadata"),
    ("meta-not-utf8", in_folder("job.json", lambda p: p.write_bytes(b"\xff{}")),
     "job.json: not UTF-8 text"),
    ("meta-list", in_folder("job.json", lambda p: p.write_text("[]")), "not a job's metadata"),
    ("meta-folder", in_folder("job.json", lambda p: (p.unlink(), p.mkdir())),
     "job.json: not a regular file"),
    ("meta-link", in_folder("job.json", link(lambda p: Path("/etc/hostname"))),
     "job.json: a link"),
    ("meta-newer", in_folder("job.json", lambda p: p.write_text('{"schema": 9}')),
     "schema 9 is from a newer lwlocal"),
    ("meta-no-settings", in_folder("job.json", lambda p: p.write_text('{"schema": 1}')),
     "unreadable job settings"),
    ("meta-created-inf", in_folder("job.json", lambda p: p.write_text(
        p.read_text().replace('"created": ', '"created": 1e400, "_": '))),
     "created inf is not a time"),
    ("meta-created-text", in_folder("job.json", lambda p: p.write_text(
        p.read_text().replace('"created": ', '"created": "noon", "_": '))),
     "created noon is not a time"),
    ("meta-state", in_folder("job.json", lambda p: p.write_text(
        p.read_text().replace('"interrupted"', '"exploded"'))), "state 'exploded'"),
    ("outline-not-json", in_folder("outline.json", lambda p: p.write_text("{")),
     "unreadable outline"),
    ("outline-not-utf8", in_folder("outline.json", lambda p: p.write_bytes(b"\xc3")),
     "outline.json: not UTF-8 text"),
    ("outline-link", in_folder("outline.json", link(lambda p: p.parent.parent / "x.json")),
     "outline.json: a link"),
    ("section-not-utf8", in_folder("sections/001.md", lambda p: p.write_bytes(b"\xff")),
     "001.md: not UTF-8 text"),
    ("section-link", in_folder("sections/001.md", link(lambda p: Path("/etc/hostname"))),
     "001.md: a link"),
    ("section-folder", in_folder("sections/001.md", lambda p: (p.unlink(), p.mkdir())),
     "001.md: not a regular file"),
    ("partial-not-utf8", in_folder("sections/002.partial.md", lambda p: p.write_bytes(b"\xfe")),
     "002.partial.md: not UTF-8 text"),
    ("sections-link", lambda f: (shutil.move(f / "sections", f.parent.parent / "s"),
                                 (f / "sections").symlink_to(f.parent.parent / "s")),
     "sections: a link"),
    ("job-link-outside", lambda f: (shutil.move(f, f.parent.parent / "moved"),
                                    f.symlink_to(f.parent.parent / "moved")),
     "not a job of"),
]


def test_jobs_lists_every_broken_job_with_why(lw_home, tmp_path):
    for name, break_it, _ in BROKEN:
        break_it(make_job(jobs_dir(), name).dir)
    (jobs_dir() / "stray-file").write_text("not a job")
    good = make_job(jobs_dir(), "zz-good")
    proc = invoke("jobs", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {row["job"]: row for row in map(json.loads, proc.stdout.splitlines())}
    assert set(rows) == {name for name, _, _ in BROKEN} | {"stray-file", good.id}
    for name, _, why in BROKEN:
        assert rows[name]["state"] == "broken" and why in rows[name]["why"], (name, rows[name])
    assert rows["stray-file"]["why"].endswith("not a job (not a folder)")
    assert rows[good.id]["state"] == "interrupted" and rows[good.id]["sections"] == "1/2"
    table = invoke("jobs")  # the table names them too, each broken one's why on stderr
    assert table.returncode == 0 and table.stdout.count("broken") == len(BROKEN) + 1
    assert len(table.stderr.strip().splitlines()) == len(BROKEN) + 1, table.stderr
    assert "Traceback" not in table.stderr


def test_a_broken_job_is_listed_and_the_others_still_open(lw_home):
    make_job(jobs_dir(), "a").section_path(1).write_bytes(b"\xff")
    make_job(jobs_dir(), "b")
    listed = list(list_jobs(jobs_dir()))
    assert [type(job) for job in listed] == [BrokenJob, Job]
    assert Job.open("b", jobs_dir()).id == "b"
