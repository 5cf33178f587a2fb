import json
import os

import pytest

from lwlocal.util.errors import LwlocalError
from lwlocal.write import journal
from lwlocal.write.journal import Job, atomic_write, list_jobs
from lwlocal.write.settings import JobSettings


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
    with pytest.raises(OSError):
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
    assert data["schema"] == journal.SCHEMA_VERSION and data["n_ctx"] == 2048
    assert data["model_path"] == "/m.gguf" and data["state"] == "new"
    again = Job.open(job.id, tmp_path).meta
    assert again == job.meta and again.settings.mode == "direct"
    with pytest.raises(TypeError):
        job.update(no_such_field=1)


def test_jobs_written_before_the_schema_are_read_and_migrated(tmp_path):
    """A job.json of the first layout (no "schema", flat fields) opens and is saved as 1."""
    folder = tmp_path / "20261101-090000-old"
    (folder / "sections").mkdir(parents=True)
    old = {"prompt": "Old job", "words": 500, "model": "smollm2-135m", "mode": "agentwrite",
           "n_ctx": 4096, "sampling": {"temperature": 0.5, "seed": 7}, "created": 1.5e9,
           "state": "interrupted", "pid": None, "model_path": None, "backend": "local"}
    (folder / "job.json").write_text(json.dumps(old))
    job = Job.open(folder.name, tmp_path)
    assert job.meta.settings.sampling.seed == 7 and job.meta.settings.n_ctx == 4096
    assert job.state == "interrupted" and job.meta.created == 1.5e9
    job.update(state="done")
    saved = json.loads((folder / "job.json").read_text())
    assert saved["schema"] == journal.SCHEMA_VERSION and saved["prompt"] == "Old job"


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
    assert list(list_jobs(tmp_path)) == []
