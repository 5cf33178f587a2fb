"""What the app is working on, kept outside the widgets: the chosen model, the compose form,
the outline being edited, the job on screen and how its run goes, the loaded model session,
and the one long task (drafting an outline, or writing) that may run at a time. The status bar, the
Writing screen's dashboard, the library and the command palette all read the job's state
from here, so they cannot disagree."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lwlocal.memory.hardware import Machine
from lwlocal.models.catalogue import DEFAULT_MODEL
from lwlocal.runtime.engine import Sampling
from lwlocal.util.paths import home, jobs_dir
from lwlocal.write.jobs import Session
from lwlocal.write.journal import Job
from lwlocal.write.length import Target, choose_target
from lwlocal.write.lookup_gain import Choice, auto_for
from lwlocal.write.outline import Outline
from lwlocal.write.settings import JobSettings

CANCELLED = "cancelled by the user"  # the journal's reason for a job the user cancelled
JOB_ACTIONS = ("pause", "resume", "cancel", "export", "review", "open_folder")


@dataclass
class Task:
    """A long step that uses the model: what it is (``drafting the outline``), the screen that
    shows it, and the event that stops it."""

    what: str
    mode: str
    cancel: threading.Event = field(default_factory=threading.Event)


def job_state(job: Job) -> str:
    """A job's state as the app names it: the journal's, with a job the user cancelled
    ``cancelled`` rather than ``interrupted``."""
    state = job.state
    return "cancelled" if state == "interrupted" and job.meta.reason == CANCELLED else state


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
    speculate: str = "off"  # off, lookup or auto (see docs/speculation.md)
    choice: Choice | None = None  # what auto chose, for the settings in ``chosen_for``
    chosen_for: tuple[str, int | None, str | None] | None = None  # model, threads, KV cache
    threads: int | None = None  # None: the planner's choice
    outline: Outline | None = None
    job: Job | None = None  # the job on the Writing screen
    paused: bool = False  # the user paused the job on screen
    stopping: str = ""  # "pause" or "cancel" while the writer stops
    start_requested: bool = False  # the Writing screen starts writing when it shows
    machine: Machine | None = None  # plan for this machine rather than the detected one
    jobs_root: Path = field(default_factory=jobs_dir)
    draft: Path | None = None  # where the prompt and the outline are kept as they are edited
    log: Path = field(default_factory=lambda: home() / "tui.log")  # errors, with tracebacks
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
                           speculate=self.speculation(), sampling=self.sampling)

    def speculation(self) -> str:
        """How the form's job decodes: its Speculate, with ``auto`` what
        :meth:`choose_speculation` chose for these settings (off until it has)."""
        if self.speculate != "auto":
            return self.speculate
        chosen = self._chosen()
        return chosen.mode if chosen is not None else "off"

    def _chosen(self) -> Choice | None:
        """What auto chose, if it was for the form's model, threads and KV cache."""
        return self.choice if self.chosen_for == self._speculation_key() else None

    def _speculation_key(self) -> tuple[str, int | None, str | None]:
        return self.model, self.threads, self.kv_type

    def choose_speculation(self, say: Callable[[str], None]) -> Choice | None:
        """For Speculate ``auto``, choose for the form's model, threads and KV cache unless
        chosen for them already (from a worker: the first time for a model it measures, for
        seconds, saying so through ``say``); the new choice, or None."""
        if self.speculate != "auto" or self._chosen() is not None:
            return None

        def measuring(line: str) -> None:
            self.session = None  # the measurement loads the model itself: not beside this one
            say(line)

        self.choice = auto_for(self.model, self.threads, kv_type=self.kv_type, say=measuring)
        self.chosen_for = self._speculation_key()
        return self.choice

    def set_words(self, words: int | None) -> None:
        """The Words a field shows: the user's length, unless it is the one the app would
        choose anyway (a field filled in by the app keeps following the prompt)."""
        if words is None or self.words is not None or words != self.target.words:
            self.words = words

    def load_session(self, settings: JobSettings) -> Session:
        """A session for ``settings``, keeping the loaded model when it still fits them."""
        self.session = (self.session.with_settings(settings) if self.session
                        else self.new_session(settings))
        return self.session

    # the job on screen and its run
    @property
    def writing(self) -> bool:
        """The job on screen is being written (or stopping)."""
        return self.task is not None and self.task.mode == "writing"

    def show(self, job: Job | None) -> None:
        """Put ``job`` on screen (None: a new job, about to be made); another job was not
        paused by the user."""
        if job is None or self.job is None or job.dir != self.job.dir:
            self.paused = False
        self.job = job

    def job_state(self) -> str:
        """The state of the job on screen: ``stopping``, ``writing`` and ``paused`` while the
        app runs it, else the journal's (``cancelled`` when the user cancelled it)."""
        if self.writing:
            return "stopping" if self.stopping else "writing"
        if self.job is None:
            return ""
        state = job_state(self.job)
        return "paused" if self.paused and state == "interrupted" else state

    def can(self, action: str) -> bool:
        """Whether a job action (one of JOB_ACTIONS) does something for the job on screen:
        pause while writing; cancel while writing or paused; resume while not written to the
        end; export, review and the folder once something is written."""
        job, state = self.job, self.job_state()
        if action == "pause":
            return state == "writing"
        if action == "cancel":
            return state in ("writing", "paused")
        if job is None or self.writing:
            return False
        if action == "resume":
            return state != "done"
        if action in ("export", "review"):
            return bool(job.finished())
        return action == "open_folder"
