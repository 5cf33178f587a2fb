"""What the app is working on, kept outside the widgets: the chosen model, the compose form,
the outline being edited, the job being written, the loaded model session, and the one long
task (planning or writing) that may run at a time."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lwlocal.memory.hardware import Machine
from lwlocal.models.catalogue import DEFAULT_MODEL
from lwlocal.runtime.engine import Sampling
from lwlocal.util.paths import jobs_dir
from lwlocal.write.jobs import Session
from lwlocal.write.journal import Job
from lwlocal.write.length import Target, choose_target
from lwlocal.write.outline import Outline
from lwlocal.write.settings import JobSettings


@dataclass
class Task:
    """A long step that uses the model: what it is (``planning the outline``), the screen that
    shows it, and the event that stops it."""

    what: str
    mode: str
    cancel: threading.Event = field(default_factory=threading.Event)


@dataclass
class TuiState:
    model: str = DEFAULT_MODEL
    prompt: str = ""
    words: int | None = None  # the user's target; None: the prompt's, else the mode's default
    mode: str = "agentwrite"
    sections: int | None = None  # None: as many as the length calls for
    sampling: Sampling = field(default_factory=Sampling)
    n_ctx: int | None = None
    kv_type: str | None = None
    speculate: str = "off"  # off or lookup (see docs/speculation.md)
    threads: int | None = None  # None: the planner's choice
    outline: Outline | None = None
    job: Job | None = None
    start_requested: bool = False  # the Writing screen starts writing when it shows
    machine: Machine | None = None  # plan for this machine rather than the detected one
    jobs_root: Path = field(default_factory=jobs_dir)
    session: Session | None = None
    task: Task | None = None
    new_session: Callable[[JobSettings], Session] = Session  # how a model is made ready

    @property
    def target(self) -> Target:
        """The length to write: the user's, the one the prompt asks for, or the default."""
        return choose_target(self.prompt, self.words, self.mode)

    def settings(self) -> JobSettings:
        target = self.target
        return JobSettings(prompt=self.prompt, words=target.words, words_source=target.source,
                           model=self.model,
                           mode=self.mode, sections=self.sections, n_ctx=self.n_ctx,
                           kv_type=self.kv_type, threads=self.threads,
                           speculate=self.speculate, sampling=self.sampling)

    def load_session(self, settings: JobSettings) -> Session:
        """A session for ``settings``, keeping the loaded model when it still fits them."""
        self.session = (self.session.with_settings(settings) if self.session
                        else self.new_session(settings))
        return self.session
