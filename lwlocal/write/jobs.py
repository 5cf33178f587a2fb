"""Starting, planning and resuming writing jobs: the calls the CLI and the TUI share."""

from __future__ import annotations

import math
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lwlocal.engine import Engine, Sampling
from lwlocal.errors import LwlocalError
from lwlocal.models import ResolvedModel, resolve
from lwlocal.paths import jobs_dir
from lwlocal.progress import ProgressCallback, ignore
from lwlocal.write.journal import Job
from lwlocal.write.plan import MAX_SECTION_WORDS, MAX_SECTIONS, Outline, section_range
from lwlocal.write.writer import JobResult, Writer, direct_outline, plan_outline, tokens_for

MODES = ("agentwrite", "direct")
DEFAULT_CTX = 8192
HEAD_ROOM = 1024  # tokens for the instruction and outline at the head of the conversation


@dataclass
class JobSettings:
    """Everything a job needs to be run again the same way; stored in its journal."""

    prompt: str
    words: int
    model: str | None = None
    mode: str = "agentwrite"
    n_ctx: int | None = None
    sections: int | None = None
    threads: int | None = None
    sampling: Sampling = field(default_factory=Sampling)

    @classmethod
    def from_meta(cls, meta: dict) -> JobSettings:
        names = {f for f in cls.__dataclass_fields__ if f != "sampling"}
        return cls(**{k: meta[k] for k in names if k in meta},
                   sampling=Sampling(**meta.get("sampling", {})))


def context_size(model: ResolvedModel, settings: JobSettings) -> int:
    """The context to run with: as asked, else enough for the job within the trained context."""
    trained = model.context_length
    if settings.n_ctx:
        if settings.n_ctx > trained:
            raise LwlocalError(f"--ctx {settings.n_ctx} exceeds {model.name}'s trained context "
                               f"of {trained} tokens")
        return settings.n_ctx
    if settings.mode == "direct":
        need = tokens_for(max(settings.words, 1)) + HEAD_ROOM
        return min(trained, max(2048, math.ceil(need / 1024) * 1024))
    return min(trained, DEFAULT_CTX)


def check_settings(settings: JobSettings, n_ctx: int) -> None:
    """Refuse word targets and modes that cannot work, in one line."""
    if settings.mode not in MODES:
        raise LwlocalError(f"--mode {settings.mode!r}: choose one of {', '.join(MODES)}")
    words = settings.words
    if words <= 0:
        raise LwlocalError(f"--words {words}: must be a positive number of words")
    if settings.sections is not None and not 1 <= settings.sections <= MAX_SECTIONS:
        raise LwlocalError(f"--sections {settings.sections}: must be between 1 and {MAX_SECTIONS}")
    if settings.mode == "direct":
        need = tokens_for(words) + HEAD_ROOM
        if need > n_ctx:
            raise LwlocalError(
                f"--words {words}: direct mode needs about {need} tokens of context but it holds "
                f"{n_ctx}; use --mode agentwrite or a larger --ctx"
            )
        return
    most = MAX_SECTIONS * MAX_SECTION_WORDS
    if words > most:
        raise LwlocalError(f"--words {words}: more than AgentWrite's {most} words "
                           f"({MAX_SECTIONS} sections of {MAX_SECTION_WORDS})")
    n_sections = settings.sections or section_range(words)[1]
    if tokens_for(math.ceil(words / n_sections)) + HEAD_ROOM > n_ctx:
        raise LwlocalError(f"--words {words}: a section of {math.ceil(words / n_sections)} words "
                           f"does not fit a context of {n_ctx} tokens; use a larger --ctx")


def _section_range(settings: JobSettings) -> tuple[int, int]:
    return (settings.sections, settings.sections) if settings.sections else section_range(
        settings.words)


class Session:
    """A model loaded for a job's settings: plan with it, then write or resume."""

    def __init__(self, settings: JobSettings) -> None:
        self.settings = settings
        self.model = resolve(settings.model)
        self.n_ctx = context_size(self.model, settings)
        check_settings(settings, self.n_ctx)
        self.engine = Engine(self.model.path, n_ctx=self.n_ctx, n_threads=settings.threads)

    def plan(self, progress: ProgressCallback = ignore) -> Outline:
        s = self.settings
        if s.mode == "direct":
            return direct_outline(s.prompt, s.words)
        return plan_outline(self.engine, self.model.format, s.prompt, s.words, s.sampling,
                            _section_range(s), progress)

    def new_job(self, root: Path | None = None) -> Job:
        meta = asdict(self.settings)
        model = self.model.card.name if self.model.card else str(self.model.path)
        meta.update(model=model, model_path=str(self.model.path), n_ctx=self.n_ctx)
        return Job.create(root or jobs_dir(), meta)

    def run(
        self,
        job: Job,
        outline: Outline | None = None,
        progress: ProgressCallback = ignore,
        cancel: threading.Event | None = None,
    ) -> JobResult:
        """Write ``job`` to the end, planning first if it has no outline yet."""
        outline = outline or job.outline()
        if outline is None:
            outline = self.plan(progress)
        if job.outline() is None:
            job.save_outline(outline)
            job.update(state="planned")
        writer = Writer(self.engine, self.model.format, job, outline, self.settings.sampling,
                        direct=self.settings.mode == "direct", progress=progress, cancel=cancel)
        return writer.run()


def resume_session(job: Job) -> Session:
    """A session with the settings a job was started with."""
    return Session(JobSettings.from_meta(job.meta))
