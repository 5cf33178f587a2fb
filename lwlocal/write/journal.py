"""A job on disk: settings, outline, one file per finished section, the section being written.

Finished files are written to a temporary name, fsynced and renamed, so a crash leaves either
the old file or the new one; the section being written streams to ``.partial`` and is what a
``kill -9`` may lose. One process writes a job at a time: it holds the job's writer lock.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

import psutil
from filelock import FileLock, Timeout

from lwlocal.util.atomic import atomic_write
from lwlocal.util.destination import write_error
from lwlocal.util.errors import LwlocalError
from lwlocal.util.json_object import json_object
from lwlocal.write.job_files import NO_FOLLOW, check_in_root, check_own_folder, find_job, read_own
from lwlocal.write.job_meta import JobMeta
from lwlocal.write.outline import Outline, parse_outline
from lwlocal.write.settings import JobSettings
from lwlocal.write.words import count_words

META = "job.json"
OUTLINE = "outline.json"
DOCUMENT = "document.md"
LOCK = "writer.lock"
NAME_TRIES = 1000  # job folders named alike: NAME, NAME-1, ... NAME-999
ROOM_FILE, ROOM = "room", 64 * 1024  # set aside while writing: job.json's last word on a full disk


def _slug(text: str) -> str:
    words = re.findall(r"[a-z0-9]+", text.lower())[:5]
    return "-".join(words) or "job"


@dataclass
class Job:
    """One writing job's folder."""

    dir: Path
    meta: JobMeta

    @property
    def id(self) -> str:
        return self.dir.name

    @classmethod
    def create(cls, root: Path, settings: JobSettings, name: str | None = None,
               **fields: Any) -> Job:
        """A new job folder under ``root`` (named ``name``, or by time and prompt) with its
        metadata written (``fields``: JobMeta or settings fields to set). It is made under a
        hidden name and renamed once its metadata is on disk, so that no stop, ``kill -9``
        included, leaves a job folder that is not a job."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = name or f"{stamp}-{_slug(settings.prompt)}"
        try:
            root.mkdir(parents=True, exist_ok=True)
            draft = root / f".{base}.{secrets.token_hex(4)}.partial"
            draft.mkdir()  # as the folder will be (mkdtemp's would be its owner's alone)
        except OSError as exc:
            raise write_error(root, exc) from exc
        try:
            try:
                (draft / "sections").mkdir()
                job = cls(draft, JobMeta(settings, created=time.time()))
                job.update(**fields)
                job.dir = _claim(draft, root, base)
            except OSError as exc:
                raise write_error(root, exc) from exc
        except BaseException:  # a full disk, or a stop: no draft left behind
            shutil.rmtree(draft, ignore_errors=True)
            raise
        return job

    @classmethod
    def open(cls, ref: str, root: Path) -> Job:
        """The job named ``ref``: a job id (or unique id prefix) in ``root``, or the path of a
        job folder in ``root`` (a job elsewhere is refused: jobs are read from their folder)."""
        return cls.load(find_job(ref, root), root)

    @classmethod
    def load(cls, folder: Path, root: Path) -> Job:
        """The job in ``folder``, a folder of ``root`` (after links are followed); one line
        naming the file for what cannot be read."""
        check_in_root(folder, root)
        path = folder / META
        text = read_own(path, folder)
        if text is None:
            raise LwlocalError(f"{folder}: not a job (no {META})")
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise LwlocalError(f"{path}: unreadable job metadata ({exc})") from None
        return cls(folder, JobMeta.from_dict(data, path))

    def save_meta(self) -> None:
        atomic_write(self.dir / META,
                     json.dumps(self.meta.to_dict(), ensure_ascii=False, indent=2))

    def update(self, **fields: Any) -> None:
        """Set JobMeta fields and settings fields by name, and save."""
        own = {k: v for k, v in fields.items() if k in JobMeta.__dataclass_fields__}
        settings = {k: v for k, v in fields.items() if k not in own}
        self.meta = replace(self.meta, **own)
        if settings:
            self.meta.settings = replace(self.meta.settings, **settings)
        self.save_meta()

    # outline
    def outline(self) -> Outline | None:
        """The saved outline (None before planning); one line naming the file if unreadable."""
        path = self.dir / OUTLINE
        text = read_own(path, self.dir)
        if text is None:
            return None
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise LwlocalError(f"{path}: unreadable outline ({exc})") from None
        if not isinstance(data, dict) or not isinstance(data.get("prompt"), str) or not (
                isinstance(data.get("words"), int) and data["words"] > 0):
            raise LwlocalError(f"{path}: not an outline (a prompt and a number of words)")
        return parse_outline(data, data["prompt"], data["words"], str(path), as_saved=True)

    def save_outline(self, outline: Outline) -> None:
        atomic_write(self.dir / OUTLINE, outline.to_json())

    # sections
    def section_path(self, index: int) -> Path:
        return self.dir / "sections" / f"{index:03d}.md"

    def partial_path(self, index: int) -> Path:
        return self.dir / "sections" / f"{index:03d}.partial.md"

    def section_text(self, index: int) -> str | None:
        """A finished section's text (None if not finished)."""
        return read_own(self.section_path(index), self.dir)

    def repairs_path(self, index: int) -> Path:
        return self.dir / "sections" / f"{index:03d}.repairs.json"

    def save_repairs(self, index: int, repairs: list[dict[str, str]]) -> None:
        """What the writer repaired in section ``index`` (``Repair.as_dict`` of
        :mod:`lwlocal.write.guard`)."""
        atomic_write(self.repairs_path(index), json.dumps(
            {"schema": 1, "repairs": repairs}, ensure_ascii=False, indent=2))

    def repairs(self, index: int) -> list[dict[str, str]]:
        """What the writer repaired in section ``index`` ([] when nothing); one line naming
        the file if unreadable."""
        path = self.repairs_path(index)
        text = read_own(path, self.dir)
        try:
            data = json.loads(text) if text is not None else {}
        except (ValueError, RecursionError) as exc:
            raise LwlocalError(f"{path}: unreadable repairs ({exc})") from None
        repairs = data.get("repairs") if isinstance(data, dict) else None
        return [{str(k): str(v) for k, v in r.items()} for r in repairs
                if isinstance(r, dict)] if isinstance(repairs, list) else []

    def tokens_path(self, index: int) -> Path:
        return self.dir / "sections" / f"{index:03d}.tokens.json"

    def save_section(self, index: int, text: str, tokens: Sequence[int] | None = None,
                     model: str = "") -> None:
        """Keep a finished section for good, with the ``tokens`` ``model`` spelled it with
        where there are some, dropping its partial file first: a writer killed in between
        leaves the section unfinished, never finished with a stale partial (or stale tokens)."""
        self.partial_path(index).unlink(missing_ok=True)
        self.repairs_path(index).unlink(missing_ok=True)
        if tokens is None:
            self.tokens_path(index).unlink(missing_ok=True)
        else:
            atomic_write(self.tokens_path(index), json.dumps(
                {"schema": 1, "model": model, "text_sha256": _sha256(text),
                 "tokens": list(tokens)}))
        atomic_write(self.section_path(index), text)

    def section_tokens(self, index: int, model: str) -> tuple[int, ...] | None:
        """The tokens ``model`` spelled finished section ``index`` with, where they were kept
        for its text as it is (None where not: another model, a text changed since, a file
        that does not read)."""
        try:
            text, kept = self.section_text(index), read_own(self.tokens_path(index), self.dir)
        except LwlocalError:  # a link, not UTF-8, unreadable: the text is handed back instead
            return None
        if text is None or kept is None or (data := json_object(kept)) is None:
            return None
        tokens = data.get("tokens")
        if (data.get("model") != model or data.get("text_sha256") != _sha256(text)
                or not isinstance(tokens, list)
                or not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0
                           for t in tokens)):
            return None
        return tuple(tokens)

    def open_partial(self, index: int) -> IO[str]:
        """The partial file of the section being written (streamed, not fsynced), empty. A
        link in its place is refused, never followed."""
        path = self.partial_path(index)
        check_own_folder(path, self.dir)
        flags = os.O_WRONLY | os.O_CREAT | NO_FOLLOW | os.O_TRUNC
        try:
            return os.fdopen(os.open(path, flags, 0o644), "w", encoding="utf-8")
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise LwlocalError(f"{path}: a link; a job writes only its own files") from None
            raise write_error(path, exc) from exc

    def reserve(self) -> None:
        """Set aside room on the job's disk (``ROOM`` bytes, written out) while it is written,
        so that a disk that fills meanwhile still takes job.json's word that it stopped, and
        why (:meth:`release` gives it back)."""
        path = self.dir / ROOM_FILE
        try:
            with path.open("wb") as out:
                out.write(bytes(ROOM))
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            path.unlink(missing_ok=True)
            raise write_error(path, exc) from exc

    def release(self) -> None:
        """Give back the room :meth:`reserve` set aside."""
        (self.dir / ROOM_FILE).unlink(missing_ok=True)

    def partial_text(self, index: int) -> str:
        """What a stopped run wrote of section ``index`` before it stopped ("" if nothing)."""
        return read_own(self.partial_path(index), self.dir) or ""

    def finished(self) -> list[int]:
        """Indices (from 1) of the finished sections."""
        return sorted(int(p.stem) for p in (self.dir / "sections").glob("[0-9][0-9][0-9].md"))

    def words(self) -> int:
        """Words written, counted as the writer counts them (titles left out): the finished
        sections and what a stopped run kept of the next one. The one count front ends show."""
        finished = self.finished()
        following = max(finished, default=0) + 1
        return (sum(count_words(self.section_text(i) or "") for i in finished)
                + count_words(self.partial_text(following)))

    def assemble(self) -> str:
        """The document from the journal: the finished sections in order (all of them once the
        job is done)."""
        outline = self.outline()
        if outline is None:
            return ""
        texts = [self.section_text(i) for i in range(1, len(outline.sections) + 1)]
        return assemble(outline, texts, self.meta.settings.mode == "direct")

    def save_document(self, text: str) -> Path:
        path = self.dir / DOCUMENT
        atomic_write(path, text)
        return path

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the job's writer lock: one writer per job, whichever process or front end (the
        same thread may nest). The operating system holds the lock, so a writer killed with
        ``kill -9`` leaves none behind; the holder's pid goes to job.json for the message."""
        lock = FileLock(self.dir / LOCK, blocking=False, is_singleton=True)
        try:
            lock.acquire()
        except Timeout:
            pid = Job.open(str(self.dir), self.dir.parent).meta.pid
            holder = f"process {pid}" if pid else "another process"
            raise LwlocalError(f"{self.id}: being written by {holder}; one writer per job"
                               ) from None
        done = False
        try:
            if lock.lock_counter == 1:
                self.update(pid=os.getpid())
            yield
            done = True
        finally:
            try:  # after a failure the pid is left: the failure, not this, is what to report
                if done and lock.lock_counter == 1 and self.dir.is_dir():
                    self.update(pid=None)
            finally:
                lock.release()

    def delete(self) -> None:
        """Remove the job's folder; refused while a process is writing it."""
        with self.writing():
            pass
        shutil.rmtree(self.dir)

    @property
    def state(self) -> str:
        """``new``, ``planned``, ``writing``, ``interrupted`` or ``done``.

        A job whose writer died without saying so (``kill -9``) shows as interrupted.
        """
        state, pid = self.meta.state, self.meta.pid
        alive = pid == os.getpid() or (bool(pid) and psutil.pid_exists(pid))
        if state == "writing" and not alive:
            return "interrupted"
        return state


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def unstarted(folder: Path) -> bool:
    """Whether ``folder`` is a job folder an older lwlocal was stopped in as it made it: no
    metadata, nothing in it but (an empty) ``sections``. A job made now never is one."""
    if not folder.is_dir() or folder.is_symlink():
        return False
    try:  # a "sections" that is not a folder fails to list: not one
        names = [p.name for p in folder.iterdir()]
        return names == [] or names == ["sections"] and not any((folder / "sections").iterdir())
    except OSError:
        return False


def _claim(draft: Path, root: Path, base: str) -> Path:
    """Rename the finished ``draft`` to the first free name of ``base``, ``base-1``, …; a
    folder an older lwlocal left without metadata (stopped as it made it, nothing written) is
    taken over."""
    for n in range(NAME_TRIES):
        folder = root / (base if n == 0 else f"{base}-{n}")
        if unstarted(folder):
            with contextlib.suppress(OSError):
                (folder / "sections").rmdir()  # only if empty
        try:
            os.rename(draft, folder)  # replaces no folder but an empty one
            return folder
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
                raise
    raise LwlocalError(f"{root}: {base} and {NAME_TRIES - 1} numbered folders after it exist "
                       "already")


def assemble(outline: Outline, texts: Sequence[str | None], direct: bool) -> str:
    """Sections under their titles (a direct job: its text); sections not written are left
    out."""
    if direct:
        return (texts[0] or "").strip() + "\n"
    parts = zip(outline.sections, texts, strict=True)
    return "\n\n".join(f"## {s.title}\n\n{t.strip()}" for s, t in parts if t is not None) + "\n"


@dataclass(frozen=True)
class BrokenJob:
    """An entry of the jobs folder that is not a job that can be read, and why."""

    dir: Path
    why: str
    state = "broken"

    @property
    def id(self) -> str:
        return self.dir.name


def list_jobs(root: Path) -> Iterator[Job | BrokenJob]:
    """Every entry of ``root``, oldest first: a job whose files all read (metadata, outline,
    sections), or a :class:`BrokenJob` saying why not; none is left out. Hidden names
    (temporary files) aside."""
    if not root.is_dir():
        return
    for folder in sorted(root.iterdir()):
        if folder.name.startswith("."):
            continue
        try:
            job = Job.load(folder, root)
            job.outline()
            job.words()
        except LwlocalError as exc:
            yield BrokenJob(folder, str(exc))
        else:
            yield job
