"""A seeded fuzz of job folders, beside the GGUF and checkpoint fuzzers: a job's journal
(``job.json``, ``outline.json``, a finished section and the partial one) damaged by byte flips,
cuts, bytes that are not UTF-8, values of the wrong type, files removed, made folders or links
out of the job; each case through ``jobs``, ``export`` and ``resume`` (on the fake backend) in
this process. Each works or ends in one line, never a traceback; ``jobs`` lists every case."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from lwlocal.util.paths import jobs_dir
from lwlocal.write.journal import Job
from lwlocal.write.outline import Outline, Section
from lwlocal.write.settings import JobSettings
from tests.support.cli import invoke

SEED, CASES = 29, 90
FILES = ("job.json", "outline.json", "sections/001.md", "sections/002.partial.md")
ODD_VALUES = (None, -1, 0, 1e308, "x", [], {}, True, 2**70, "\udcff")
Damage = Callable[[random.Random, Path, Path], str]


def healthy_job(root: Path, name: str) -> Job:
    """An interrupted two-section job: outline, section 1 finished, section 2 begun."""
    job = Job.create(root, JobSettings("A guide to tea.", 20), name=name)
    job.save_outline(Outline("A guide to tea.", 20, [Section("Leaves", "which", 10),
                                                       Section("Water", "how hot", 10)]))
    job.save_section(1, "Sencha is bright and grassy.")
    job.partial_path(2).write_text("Water at seventy")
    job.update(state="interrupted")
    return job


def flip(rng: random.Random, path: Path, outside: Path) -> str:
    data = bytearray(path.read_bytes())
    for _ in range(rng.randint(1, 4)):
        if data:
            data[rng.randrange(len(data))] = rng.randrange(256)
    path.write_bytes(bytes(data))
    return "flip"


def cut(rng: random.Random, path: Path, outside: Path) -> str:
    data = path.read_bytes()
    path.write_bytes(data[: rng.randrange(len(data) + 1)])
    return "cut"


def not_utf8(rng: random.Random, path: Path, outside: Path) -> str:
    data = path.read_bytes()
    at = rng.randrange(len(data) + 1)
    path.write_bytes(data[:at] + rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80"]) + data[at:])
    return "not UTF-8"


def odd_value(rng: random.Random, path: Path, outside: Path) -> str:
    """A key of a JSON file given a value of another type (not JSON: a flip instead)."""
    try:
        data = json.loads(path.read_text())
    except ValueError:
        return flip(rng, path, outside)
    target = data
    while isinstance(target, dict) and target and rng.random() < 0.5:
        inner = target[rng.choice(sorted(target))]
        if not isinstance(inner, (dict, list)) or not inner:
            break
        target = inner if isinstance(inner, dict) else inner[0]
    if isinstance(target, dict) and target:
        target[rng.choice(sorted(target))] = rng.choice(ODD_VALUES)
    path.write_text(json.dumps(data, ensure_ascii=False), errors="surrogateescape")
    return "odd value"


def removed(rng: random.Random, path: Path, outside: Path) -> str:
    path.unlink()
    return "removed"


def folder(rng: random.Random, path: Path, outside: Path) -> str:
    path.unlink()
    path.mkdir()
    return "a folder"


def linked(rng: random.Random, path: Path, outside: Path) -> str:
    path.unlink()
    path.symlink_to(outside)
    return "a link out"


DAMAGE: tuple[Damage, ...] = (flip, flip, cut, not_utf8, odd_value, odd_value, removed, folder,
                              linked)


def damage(rng: random.Random, job: Job, outside: Path) -> str:
    """One to three damages to the job's files; what was done."""
    done = []
    for _ in range(rng.randint(1, 3)):
        name = rng.choice(FILES)
        path = job.dir / name
        if path.is_file() and not path.is_symlink():
            done.append(f"{name} {rng.choice(DAMAGE)(rng, path, outside)}")
    return ", ".join(done) or "none"


def outcome(args: list[str], case: str) -> str:
    """Run ``lwlocal ARGS``: ``works`` or ``refused`` (one line); anything else fails."""
    try:
        proc = invoke(*args)
    except Exception as exc:  # a traceback: report the case that caused it
        raise AssertionError(f"{case}: lwlocal {' '.join(args)} raised {exc!r}") from exc
    lines = proc.stderr.strip().splitlines()
    if proc.returncode == 0:
        return "works"
    assert proc.returncode == 1, (case, args, proc.stderr)
    assert len(lines) == 1 and lines[0].startswith("lwlocal: error: "), (case, args, proc.stderr)
    return "refused"


def test_seeded_damaged_jobs_give_one_line_or_work(tmp_path, lw_home, fake_model):
    rng = random.Random(SEED)
    outside = tmp_path / "outside.txt"
    outside.write_text("not the job's\n")
    cases = {}
    for n in range(CASES):
        job = healthy_job(jobs_dir(), f"case-{n:03d}")
        cases[job.id] = damage(rng, job, outside)
    listing = invoke("jobs", "--json")
    assert listing.returncode == 0, listing.stderr
    rows = {row["job"]: row for row in map(json.loads, listing.stdout.splitlines())}
    assert set(rows) == set(cases)  # every case listed, broken or not
    counts: Counter[str] = Counter()
    for job_id, case in cases.items():
        described = f"{job_id} ({case})"
        counts[f"jobs {rows[job_id]['state']}"] += 1
        out = tmp_path / f"{job_id}.md"
        counts[f"export {outcome(['export', job_id, '-o', str(out)], described)}"] += 1
        counts[f"resume {outcome(['resume', job_id], described)}"] += 1
    assert outside.read_text() == "not the job's\n"  # no link out was followed to write
    print(dict(counts))
    assert counts["jobs broken"] and counts["export refused"] and counts["resume works"]


@pytest.mark.parametrize("name", FILES)
def test_each_file_linked_out_of_its_job_is_refused(name, tmp_path, lw_home, fake_model):
    outside = tmp_path / "outside.txt"
    outside.write_text("not the job's\n")
    job = healthy_job(jobs_dir(), "tea")
    linked(random.Random(0), job.dir / name, outside)
    doc = tmp_path / "doc.md"
    exported = outcome(["export", "tea", "-o", str(doc)], name)
    assert outcome(["resume", "tea"], name) == "refused"
    if name.endswith("partial.md"):  # what export never reads
        assert exported == "works" and "not the job's" not in doc.read_text()
    else:
        assert exported == "refused" and not doc.exists()
    assert outside.read_text() == "not the job's\n"
