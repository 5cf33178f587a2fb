"""A job on disk: settings, outline, one file per finished section, the section being written.

Finished files are written to a temporary name, fsynced and renamed, so a crash leaves either
the old file or the new one; the section being written streams to ``.partial`` and is what a
``kill -9`` may lose.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import psutil

from lwlocal.errors import LwlocalError
from lwlocal.write.outline import Outline, parse_outline

META = "job.json"
OUTLINE = "outline.json"
DOCUMENT = "document.md"


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file, fsync and rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _slug(text: str) -> str:
    words = re.findall(r"[a-z0-9]+", text.lower())[:5]
    return "-".join(words) or "job"


@dataclass
class Job:
    """One writing job's folder."""

    dir: Path
    meta: dict[str, Any]

    @property
    def id(self) -> str:
        return self.dir.name

    @classmethod
    def create(cls, root: Path, meta: dict[str, Any], name: str | None = None) -> Job:
        """A new job folder under ``root`` (named ``name``, or by time and prompt) with its
        metadata written."""
        root.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = name or f"{stamp}-{_slug(meta.get('prompt', ''))}"
        for n in range(1000):
            folder = root / (base if n == 0 else f"{base}-{n}")
            try:
                folder.mkdir()
                break
            except FileExistsError:
                continue
        (folder / "sections").mkdir()
        job = cls(folder, {**meta, "created": time.time(), "state": "new"})
        job.save_meta()
        return job

    @classmethod
    def open(cls, ref: str, root: Path) -> Job:
        """The job named ``ref``: a folder path, or a job id (or unique id prefix) under root."""
        folder = Path(ref).expanduser()
        if not (folder / META).is_file():
            matches = sorted(root.glob(f"{ref}*")) if root.is_dir() else []
            matches = [m for m in matches if (m / META).is_file()]
            if len(matches) != 1:
                why = "no such job" if not matches else "several jobs match"
                raise LwlocalError(f"{ref}: {why} in {root}")
            folder = matches[0]
        try:
            meta = json.loads((folder / META).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise LwlocalError(f"{folder / META}: unreadable job metadata ({exc})") from exc
        return cls(folder, meta)

    def save_meta(self) -> None:
        atomic_write(self.dir / META, json.dumps(self.meta, ensure_ascii=False, indent=2))

    def update(self, **fields: Any) -> None:
        self.meta.update(fields)
        self.save_meta()

    # outline
    def outline(self) -> Outline | None:
        path = self.dir / OUTLINE
        if not path.is_file():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        return parse_outline(data, data["prompt"], data["words"], str(path))

    def save_outline(self, outline: Outline) -> None:
        atomic_write(self.dir / OUTLINE, outline.to_json())

    # sections
    def section_path(self, index: int) -> Path:
        return self.dir / "sections" / f"{index:03d}.md"

    def partial_path(self, index: int) -> Path:
        return self.dir / "sections" / f"{index:03d}.partial.md"

    def section_text(self, index: int) -> str | None:
        path = self.section_path(index)
        return path.read_text(encoding="utf-8") if path.is_file() else None

    def save_section(self, index: int, text: str) -> None:
        """Keep a finished section for good and drop its partial file."""
        atomic_write(self.section_path(index), text)
        self.partial_path(index).unlink(missing_ok=True)

    def open_partial(self, index: int) -> IO[str]:
        """A fresh partial file for the section being written (streamed, not fsynced)."""
        return self.partial_path(index).open("w", encoding="utf-8")

    def finished(self) -> list[int]:
        """Indices (from 1) of the finished sections."""
        return sorted(int(p.stem) for p in (self.dir / "sections").glob("[0-9][0-9][0-9].md"))

    def assemble(self) -> str:
        """The document from the journal: the finished sections in order (all of them once the
        job is done)."""
        outline = self.outline()
        if outline is None:
            return ""
        texts = [self.section_text(i) for i in range(1, len(outline.sections) + 1)]
        return assemble(outline, texts, self.meta.get("mode") == "direct")

    def save_document(self, text: str) -> Path:
        path = self.dir / DOCUMENT
        atomic_write(path, text)
        return path

    def delete(self) -> None:
        """Remove the job's folder; refused while a live process is writing it."""
        if self.state == "writing":
            raise LwlocalError(f"{self.id}: being written by process {self.meta.get('pid')}")
        shutil.rmtree(self.dir)

    @property
    def state(self) -> str:
        """``new``, ``planned``, ``writing``, ``interrupted`` or ``done``.

        A job whose writer died without saying so (``kill -9``) shows as interrupted.
        """
        state = self.meta.get("state", "new")
        pid = self.meta.get("pid")
        alive = pid == os.getpid() or (bool(pid) and psutil.pid_exists(pid))
        if state == "writing" and not alive:
            return "interrupted"
        return state


def assemble(outline: Outline, texts: Sequence[str | None], direct: bool) -> str:
    """Sections under their titles (a direct job: its text); sections not written are left
    out."""
    if direct:
        return (texts[0] or "").strip() + "\n"
    parts = zip(outline.sections, texts, strict=True)
    return "\n\n".join(f"## {s.title}\n\n{t.strip()}" for s, t in parts if t is not None) + "\n"


def list_jobs(root: Path) -> Iterator[Job]:
    """Every job under ``root``, oldest first; folders with broken metadata are skipped."""
    if not root.is_dir():
        return
    for folder in sorted(root.iterdir()):
        if (folder / META).is_file():
            try:
                yield Job.open(str(folder), root)
            except LwlocalError:
                continue
