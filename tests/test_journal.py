import json
import os

import pytest

from lwlocal.util.atomic import atomic_write
from lwlocal.util.errors import LwlocalError
from lwlocal.util.paths import jobs_dir
from lwlocal.write import journal
from lwlocal.write.job_meta import SCHEMA_VERSION
from lwlocal.write.journal import BrokenJob, Job, list_jobs
from lwlocal.write.settings import JobSettings
from tests.support.cli import run_cli


def test_atomic_write_replaces_whole_files(tmp_path):
    path = tmp_path / "f.md"
    atomic_write(path, "one")
    atomic_write(path, "two")
    assert path.read_text() == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.md"]


def test_failed_write_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "f.md"
    atomic_write(path, "finished section")

    def crash(fd):
        raise OSError("disk gone")

    monkeypatch.setattr(journal.os, "fsync", crash)
    with pytest.raises(LwlocalError, match=r"f.md: could not be written \(disk gone\)"):
        atomic_write(path, "half")
    assert path.read_text() == "finished section"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.md"]


def test_job_sections_and_state(tmp_path):
    job = Job.create(tmp_path, JobSettings("A history of tea", 100))
    assert job.id.endswith("a-history-of-tea")
    assert job.state == "new"
    with job.open_partial(1) as partial:
        partial.write("half a sen")
    assert job.finished() == []
    job.save_section(1, "First section.")
    assert job.finished() == [1]
    assert not job.partial_path(1).exists()
    assert job.section_text(1) == "First section."
    assert job.section_text(2) is None


def test_a_section_is_never_finished_with_its_partial_file_left(tmp_path, monkeypatch):
    """A writer killed while saving a section leaves it unfinished (rewritten on resume),
    never finished beside a stale partial file."""
    job = Job.create(tmp_path, JobSettings("A history of tea", 100))
    with job.open_partial(1) as partial:
        partial.write("The whole section.")
    seen = {}

    def killed(path, text):
        seen["partial"] = job.partial_path(1).exists()
        raise KeyboardInterrupt  # the writer dies before the section is in place

    monkeypatch.setattr(journal, "atomic_write", killed)
    with pytest.raises(KeyboardInterrupt):
        job.save_section(1, "The whole section.")
    assert seen == {"partial": False}
    assert job.finished() == [] and not job.partial_path(1).exists()


def test_a_writer_that_died_shows_as_interrupted(tmp_path):
    job = Job.create(tmp_path, JobSettings("p", 100))
    job.update(state="writing", pid=os.getpid())
    assert job.state == "writing"
    job.update(pid=2**22 + 12345)  # above the kernel's pid_max: never a live process
    assert job.state == "interrupted"


def test_open_by_id_prefix_and_errors(tmp_path):
    a = Job.create(tmp_path, JobSettings("alpha", 100))
    assert Job.open(a.id, tmp_path).dir == a.dir
    assert Job.open(str(a.dir), tmp_path).dir == a.dir
    with pytest.raises(LwlocalError, match="no such job"):
        Job.open("nope", tmp_path)
    Job.create(tmp_path, JobSettings("alpha", 100))
    with pytest.raises(LwlocalError, match="several jobs"):
        Job.open(a.id[:8], tmp_path)
    assert len(list(list_jobs(tmp_path))) == 2


def test_job_metadata_is_typed_and_versioned(tmp_path):
    job = Job.create(tmp_path, JobSettings("A guide", 300, mode="direct"), n_ctx=2048,
                     model_path="/m.gguf")
    data = json.loads((job.dir / "job.json").read_text())
    assert data["schema"] == SCHEMA_VERSION and data["n_ctx"] == 2048
    assert data["model_path"] == "/m.gguf" and data["state"] == "new"
    again = Job.open(job.id, tmp_path).meta
    assert again == job.meta and again.settings.mode == "direct"
    with pytest.raises(TypeError):
        job.update(no_such_field=1)


def test_jobs_written_before_the_schema_are_read_and_migrated(tmp_path):
    """A job.json of the first layout (no "schema", flat fields) opens and is saved in the
    current one; it was written without DRY, and is resumed so."""
    folder = tmp_path / "20261101-090000-old"
    (folder / "sections").mkdir(parents=True)
    old = {"prompt": "Old job", "words": 500, "model": "smollm2-135m", "mode": "agentwrite",
           "n_ctx": 4096, "sampling": {"temperature": 0.5, "seed": 7}, "created": 1.5e9,
           "state": "interrupted", "pid": None, "model_path": None, "backend": "local"}
    (folder / "job.json").write_text(json.dumps(old))
    job = Job.open(folder.name, tmp_path)
    assert job.meta.settings.sampling.seed == 7 and job.meta.settings.n_ctx == 4096
    assert job.meta.settings.sampling.dry_multiplier == 0.0
    assert job.state == "interrupted" and job.meta.created == 1.5e9
    job.update(state="done")
    saved = json.loads((folder / "job.json").read_text())
    assert saved["schema"] == SCHEMA_VERSION and saved["prompt"] == "Old job"


def test_a_planned_job_of_layout_2_reads_as_outlined(tmp_path):
    """Layout 3 calls a job with its outline and nothing written "outlined"; layout 2 said
    "planned" (the plan is the memory plan)."""
    folder = tmp_path / "20261201-090000-outlined"
    (folder / "sections").mkdir(parents=True)
    (folder / "job.json").write_text(json.dumps(
        {"schema": 2, "prompt": "p", "words": 300, "state": "planned", "sampling": {}}))
    job = Job.open(folder.name, tmp_path)
    assert job.state == "outlined"
    job.update(pid=None)
    saved = json.loads((folder / "job.json").read_text())
    assert (saved["schema"], saved["state"]) == (SCHEMA_VERSION, "outlined")
    (folder / "job.json").write_text(json.dumps({**saved, "state": "planned"}))
    with pytest.raises(LwlocalError, match="state 'planned'"):  # not a state of layout 3
        Job.open(folder.name, tmp_path)


@pytest.mark.parametrize("data,problem", [
    ({"schema": 99, "prompt": "p", "words": 1}, "schema 99 is from a newer lwlocal"),
    ([1, 2], "not a job's metadata"),
    ({"prompt": "p", "words": 1, "state": "exploded"}, "state 'exploded'"),
    ({"prompt": "p"}, "unreadable job settings"),
])
def test_metadata_that_cannot_be_read_is_one_line(tmp_path, data, problem):
    folder = tmp_path / "job"
    folder.mkdir()
    (folder / "job.json").write_text(json.dumps(data))
    with pytest.raises(LwlocalError, match=problem):
        Job.open(str(folder), tmp_path)
    (listed,) = list_jobs(tmp_path)  # listed as broken, with why
    assert isinstance(listed, BrokenJob) and problem in listed.why


HOLD_LOCK = """
import sys
from pathlib import Path
from lwlocal.write.journal import Job
job = Job.open(sys.argv[1], Path(sys.argv[1]).parent)
with job.writing():
    print("held", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def held_job(lw_home):
    """A job whose writer lock another process holds (until it is killed)."""
    import subprocess
    import sys

    job = Job.create(jobs_dir(), JobSettings("A history of tea", 100))
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(job.dir)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    yield job, holder
    holder.kill()
    holder.wait()


def test_one_writer_per_job(held_job):
    job, holder = held_job
    second = Job.open(str(job.dir), job.dir.parent)
    with pytest.raises(LwlocalError, match=rf"being written by process {holder.pid}; one writer"):
        second.writing().__enter__()
    with pytest.raises(LwlocalError, match="being written"):
        job.delete()
    assert job.dir.is_dir()


def test_a_killed_writer_leaves_no_lock(held_job):
    job, holder = held_job
    holder.kill()  # kill -9: the operating system drops the lock with the process
    holder.wait()
    with job.writing(), job.writing():  # the same thread may nest
        assert Job.open(str(job.dir), job.dir.parent).meta.pid == os.getpid()
    assert Job.open(str(job.dir), job.dir.parent).meta.pid is None


def test_resume_refuses_a_job_being_written(held_job, lw_home):
    from tests.support.cli import run_cli

    job, holder = held_job
    proc = run_cli("resume", str(job.dir), env_home=lw_home)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (f"lwlocal: error: {job.id}: being written by process "
                                   f"{holder.pid}; one writer per job")


def test_job_folder_names_that_are_all_taken_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(journal, "NAME_TRIES", 3)
    for _ in range(3):
        Job.create(tmp_path, JobSettings("p", 100), name="same")
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    with pytest.raises(LwlocalError, match="same and 2 numbered folders after it exist"):
        Job.create(tmp_path, JobSettings("q", 100), name="same")
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before


def test_a_sections_tokens_are_kept_for_its_text_and_model_only(tmp_path):
    job = Job.create(tmp_path, JobSettings("p", 100))
    job.save_section(1, "Water.", (103, 571, 13), "m.gguf 10")
    assert job.section_tokens(1, "m.gguf 10") == (103, 571, 13)
    assert job.section_tokens(1, "other.gguf 10") is None  # another model's tokenizer
    assert job.finished() == [1] and job.section_text(1) == "Water."
    job.section_path(1).write_text("Water!")  # the text changed since
    assert job.section_tokens(1, "m.gguf 10") is None
    for kept in ("{", "[]", '{"model": "m.gguf 10", "tokens": [1, -2]}'):
        job.save_section(1, "Water.", (1,), "m.gguf 10")
        job.tokens_path(1).write_text(kept)
        assert job.section_tokens(1, "m.gguf 10") is None  # read as text instead
    job.tokens_path(1).write_bytes(b"\xff")  # not UTF-8: read as text, not refused
    assert job.section_tokens(1, "m.gguf 10") is None
    job.save_section(1, "Water.")  # written again on a server: no stale tokens left
    assert not job.tokens_path(1).exists() and job.section_tokens(1, "m.gguf 10") is None


def test_a_job_folder_appears_only_with_its_metadata(tmp_path, monkeypatch):
    seen = []

    def write(path, text):  # what a `kill -9` as the metadata is written would leave
        seen.append(sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")))
        atomic_write(path, text)

    monkeypatch.setattr(journal, "atomic_write", write)
    job = Job.create(tmp_path, JobSettings("p", 100), name="tea")
    assert seen == [[]] and job.dir == tmp_path / "tea"
    assert Job.open("tea", tmp_path).meta.settings.prompt == "p"
    assert [p.name for p in tmp_path.iterdir()] == ["tea"]
    umask = os.umask(0)
    os.umask(umask)
    assert job.dir.stat().st_mode & 0o777 == 0o777 & ~umask  # as a folder made by hand


def test_a_job_folder_cut_short_at_its_creation_is_taken_over(tmp_path):
    (tmp_path / "tea" / "sections").mkdir(parents=True)  # as an older lwlocal's kill -9 left it
    job = Job.create(tmp_path, JobSettings("p", 100), name="tea")
    assert job.id == "tea" and Job.open("tea", tmp_path).meta.settings.prompt == "p"
    (tmp_path / "cake").mkdir()
    (tmp_path / "cake" / "notes.txt").write_text("mine")  # not a job, and not lwlocal's
    assert Job.create(tmp_path, JobSettings("p", 100), name="cake").id == "cake-1"
    assert (tmp_path / "cake" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("outline", ["{", "[]", '{"sections": []}', '{"prompt": "p"}',
                                     '{"prompt": "p", "words": 10, "sections": 3}'])
def test_a_corrupt_outline_is_one_line_and_jobs_lists_the_job(tmp_path, lw_home, outline):
    job = Job.create(jobs_dir(), JobSettings("p", 100))
    (job.dir / "outline.json").write_text(outline)
    with pytest.raises(LwlocalError, match="outline"):
        job.outline()
    proc = run_cli("jobs", "--json", env_home=lw_home)
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout)
    assert row["job"] == job.id and row["state"] == "broken"
    assert row["why"].startswith(f"{job.dir / 'outline.json'}: ")


def test_a_saved_outline_reads_back_with_the_budgets_it_was_saved_with(tmp_path):
    """The budgets of a 10,000-word job's checked outline (six of 1,000 words, one of 241):
    read back, they are what the uninterrupted job wrote to, not normalised again (which made
    them 998 and 249, and a resumed job ask for other lengths than the uninterrupted one)."""
    from lwlocal.write.outline import Outline, Section

    budgets = [1000] * 6 + [241, 689, 1000, 242, 241, 965, 622]
    outline = Outline("A guide to bread", sum(budgets),
                      [Section(f"Part {i}", f"point {i}", w) for i, w in enumerate(budgets, 1)])
    job = Job.create(tmp_path, JobSettings("A guide to bread", sum(budgets)))
    job.save_outline(outline)
    loaded = Job.open(job.id, tmp_path).outline()
    assert loaded is not None and [s.words for s in loaded.sections] == budgets
    assert loaded.as_text() == outline.as_text()
