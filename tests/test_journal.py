import os

import pytest

from lwlocal.errors import LwlocalError
from lwlocal.write import journal
from lwlocal.write.journal import Job, atomic_write, list_jobs


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
    job = Job.create(tmp_path, {"prompt": "A history of tea", "words": 100})
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


def test_a_writer_that_died_shows_as_interrupted(tmp_path):
    job = Job.create(tmp_path, {"prompt": "p"})
    job.update(state="writing", pid=os.getpid())
    assert job.state == "writing"
    job.update(pid=2**22 + 12345)  # above the kernel's pid_max: never a live process
    assert job.state == "interrupted"


def test_open_by_id_prefix_and_errors(tmp_path):
    a = Job.create(tmp_path, {"prompt": "alpha"})
    assert Job.open(a.id, tmp_path).dir == a.dir
    assert Job.open(str(a.dir), tmp_path).dir == a.dir
    with pytest.raises(LwlocalError, match="no such job"):
        Job.open("nope", tmp_path)
    Job.create(tmp_path, {"prompt": "alpha"})
    with pytest.raises(LwlocalError, match="several jobs"):
        Job.open(a.id[:8], tmp_path)
    assert len(list(list_jobs(tmp_path))) == 2
