"""Starting, planning and resuming writing jobs: the calls the CLI and the TUI share."""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Collection
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lwlocal.families.prompt_format import PromptFormat
from lwlocal.memory.context_need import context_needed
from lwlocal.memory.context_settings import Settings, check_overrides
from lwlocal.memory.hardware import Machine, detect
from lwlocal.memory.model_shape import ModelShape, shape_from_card, shape_from_gguf
from lwlocal.memory.planner import Plan, plan
from lwlocal.memory.speed_probe import kept_speed
from lwlocal.models.catalogue import CARDS, ResolvedModel, local_file, resolve
from lwlocal.openai.client import OpenAIChat
from lwlocal.openai.endpoint import Server
from lwlocal.runtime.chat import ChatBackend, LocalChat
from lwlocal.runtime.engine import Engine, check_sampling
from lwlocal.runtime.speculate import check_speculate
from lwlocal.util.cpu import check_threads, default_threads
from lwlocal.util.destination import check_destination, check_folder
from lwlocal.util.errors import LwlocalError, LwlocalWarning, SettingError
from lwlocal.util.paths import jobs_dir
from lwlocal.util.progress import Progress, ProgressCallback, ignore
from lwlocal.write.eta import Eta
from lwlocal.write.journal import META, Job
from lwlocal.write.length import SOURCES
from lwlocal.write.lookup_gain import kept_gain
from lwlocal.write.outline import (
    BUDGET_CAP,
    MAX_SECTION_WORDS,
    MAX_SECTIONS,
    MAX_WORDS,
    Outline,
)
from lwlocal.write.outlining import direct_outline, draft_outline
from lwlocal.write.results import JobResult
from lwlocal.write.settings import BACKENDS, MEMORY_FIELDS, MODES, JobSettings
from lwlocal.write.turn_sizes import turn_sizes
from lwlocal.write.words import (
    ASSUMED_TOKENS_PER_WORD,
    count_words,
    language,
    measure_tokens_per_word,
)
from lwlocal.write.writer import Writer
from lwlocal.write.writing_pace import keep_pace, kept_pace

BYTES_PER_WORD = 16  # generous: UTF-8 text with its spaces and Markdown marks


def check_settings(settings: JobSettings) -> None:
    """Refuse modes, word targets, section counts, memory, thread and sampling settings that
    cannot work, in one line."""
    if settings.mode not in MODES:
        raise SettingError(f"{{mode}} {settings.mode!r}: choose one of {', '.join(MODES)}")
    if settings.backend not in BACKENDS:
        raise SettingError(f"{{backend}} {settings.backend!r}: choose one of "
                           f"{', '.join(BACKENDS)}")
    if settings.backend == "openai" and not settings.base_url:
        raise SettingError("{backend} openai needs {base_url} (e.g. http://127.0.0.1:8080/v1)")
    if settings.words_source not in SOURCES:
        raise SettingError(f"{{words_source}} {settings.words_source!r}: choose one of "
                           f"{', '.join(SOURCES)}")
    words = settings.words
    # the length as the user gave it: an option, or words of the instruction
    asked = (f"{{words}} {words}" if settings.words_source == "option" else
             f"the instruction's {words:,} words")
    if words <= 0:
        raise SettingError(f"{asked}: must be a positive number of words")
    if words > BUDGET_CAP:
        raise SettingError(f"{asked}: more than {BUDGET_CAP} words")
    if settings.sections is not None and not 1 <= settings.sections <= MAX_SECTIONS:
        raise SettingError(f"{{sections}} {settings.sections}: must be between 1 and "
                           f"{MAX_SECTIONS}")
    if settings.mode == "agentwrite" and words > MAX_WORDS:
        raise SettingError(f"{asked}: more than AgentWrite's {MAX_WORDS} words "
                           f"({MAX_SECTIONS} sections of {MAX_SECTION_WORDS})")
    check_overrides(settings.overrides)
    check_threads(settings.threads)
    check_sampling(settings.sampling)
    check_speculate(settings.speculate, settings.flash_attn, settings.kv_type,
                    settings.draft_model)
    if settings.backend == "openai" and settings.speculate != "off":
        raise SettingError(f"{{speculate}} {settings.speculate} is for the local backend (a "
                           "server decodes as it is set up to)")


def check_destinations(settings: JobSettings, output: Path | None = None,
                       root: Path | None = None) -> None:
    """Before any work: the jobs folder ``root`` takes the job's journal (its sections, then
    the whole document: about twice the text) and ``output`` the document."""
    size = settings.words * BYTES_PER_WORD
    check_folder(root or jobs_dir(), 2 * size)
    if output is not None:
        check_destination(output, size)


def job_plan(
    settings: JobSettings,
    shape: ModelShape,
    tokenizer: Path | None,
    *,
    lang: str | None = None,
    machine: Machine | None = None,
    ram: int | None = None,
    vram: int | None = None,
) -> Plan:
    """The planner's settings for this job (the user's overrides kept), its prompt counted in.

    Words become tokens at the ratio the model's tokenizer (a GGUF path) gives on sample prose
    in the job's language, or an assumed ratio without one; ``ram``/``vram`` (bytes) plan for
    another machine than this one.
    """
    lang = lang or language(settings.prompt)
    if tokenizer is not None:
        ratio, measured = measure_tokens_per_word(tokenizer, lang), True
    else:
        ratio, measured = ASSUMED_TOKENS_PER_WORD[lang], False
    need = context_needed(settings.words, settings.mode, ratio, settings.n_sections, measured,
                          count_words(settings.prompt))
    # the context is sized for the most sections the outline may have; the time, for the
    # fewest and one more: models outline long sections (the default model 3, 3 and 8 for
    # 500, 2,000 and 5,000 words), and the time left counts the outline's own once drafted
    low, high = settings.section_range
    sections = 1 if settings.mode == "direct" else min(high, low + 1)
    pace = kept_pace(tokenizer, settings.mode, lang) if tokenizer else None
    need = replace(need, sections=sections,
                   turns=turn_sizes(settings.prompt, settings.words, sections, ratio),
                   pace=pace.tokens_per_word if pace else None, pace_runs=pace.runs if pace else 0)
    draft = None
    if settings.draft_model:
        drafting = resolve(settings.draft_model)
        draft = shape_from_gguf(drafting.path, drafting.name)
    machine = machine or detect()
    threads = settings.threads or default_threads(machine.cores)
    gain = kept_gain(tokenizer, threads) if tokenizer and settings.speculate == "lookup" else None
    return plan(shape, machine, need, settings.overrides, ram, vram, draft, kept_speed(threads),
                gain.gain if gain else 1.0)


@dataclass(frozen=True)
class ModelPlan:
    """A model's plan for a job, and what running it needs: the GGUF path (a name the card's
    GGUF would have when it is not downloaded), its prompt format, and the GGUF whose
    tokenizer measured the words (None when assumed)."""

    plan: Plan
    path: Path
    format: PromptFormat
    tokenizer: Path | None
    draft: Path | None = None  # the draft model's GGUF, speculating with one


def model_plan(model: str, settings: JobSettings, *, quant: str | None = None,
               lang: str | None = None, machine: Machine | None = None, ram: int | None = None,
               vram: int | None = None) -> ModelPlan:
    """Plan ``settings`` for ``model``: a card (its local GGUF, or before download its
    published shape at ``quant``, Q4_K_M by default) or a GGUF path."""
    card = CARDS.get(model)
    path = local_file(card) if card and quant is None else None
    if card and path is None:
        shape = shape_from_card(card, quant or "Q4_K_M")
        path, prompt_format, tokenizer = (Path(f"{card.name}-{shape.quant}.gguf"), card.format,
                                          None)
    else:
        resolved = resolve(str(path) if path else model)
        path, prompt_format, tokenizer = resolved.path, resolved.format, resolved.path
        shape = shape_from_gguf(path, resolved.name)
    return ModelPlan(job_plan(settings, shape, tokenizer, lang=lang, machine=machine, ram=ram,
                              vram=vram), path, prompt_format, tokenizer,
                     resolve(settings.draft_model).path if settings.draft_model else None)


def check_plan(job_plan: Plan, settings: JobSettings, model: ResolvedModel) -> None:
    """Refuse a job whose context or memory the plan says will not do, naming what would."""
    n_ctx, need = job_plan.settings.n_ctx, job_plan.need
    if n_ctx > model.context_length:
        raise SettingError(f"{{n_ctx}} {n_ctx} exceeds {model.name}'s trained context of "
                           f"{model.context_length} tokens")
    if need.minimum > model.context_length:
        prompt = (f"the prompt (about {need.prompt_tokens:,} tokens) and " if
                  need.prompt_tokens > need.minimum // 4 else "")
        fewer = "shorten the prompt or ask for fewer {words}" if prompt else "ask for fewer {words}"
        raise SettingError(f"{prompt}{settings.words:,} words need about {need.minimum:,} "
                           f"tokens of context; {model.name} takes at most "
                           f"{model.context_length:,}: {fewer}")
    if n_ctx < need.minimum:
        hint = "use {mode} agentwrite or a larger {n_ctx}" if settings.mode == "direct" else (
            "use a larger {n_ctx}")
        raise SettingError(f"{{words}} {settings.words}: {settings.mode} mode needs about "
                           f"{need.minimum} tokens of context but it holds {n_ctx}; {hint}")
    if not job_plan.fits:
        raise SettingError(f"{model.name}: {'; try '.join(job_plan.suggestions[:2])}")


def local_chat(model: ResolvedModel, chosen: Settings, threads: int | None = None,
               speculate: str = "off", draft: ResolvedModel | None = None) -> ChatBackend:
    """The local backend of a session: ``model`` loaded with the planner's settings
    (``threads`` overriding the planned ones), talking in its prompt format, decoding as
    ``speculate`` says (with ``draft``: see :class:`Engine`)."""
    engine = Engine(model.path, n_ctx=chosen.n_ctx, n_batch=chosen.n_batch,
                    n_threads=threads or chosen.threads, flash_attn=chosen.flash_attn,
                    kv_type=chosen.kv_type, n_gpu_layers=chosen.n_gpu_layers,
                    speculate=speculate, draft_model=draft.path if draft else None)
    return LocalChat(engine, model.format)


class Session:
    """A model ready for a job's settings: loaded here with the planner's settings, or on a
    server (``settings.backend == "openai"``). Plan with it, then write or resume."""

    def __init__(self, settings: JobSettings, server: Server | None = None) -> None:
        check_settings(settings)
        self.settings = settings
        self.server = server
        self.model: ResolvedModel | None = None
        self.memory_plan: Plan | None = None
        self.chat: ChatBackend
        if settings.backend == "openai":
            self.chat = OpenAIChat(server or Server(str(settings.base_url),
                                                    model=settings.server_model,
                                                    n_ctx=settings.n_ctx))
            return
        self.model = resolve(settings.model)
        self.memory_plan = job_plan(settings, shape_from_gguf(self.model.path), self.model.path)
        check_plan(self.memory_plan, settings, self.model)
        for warning in self.memory_plan.warnings:
            warnings.warn(warning, LwlocalWarning, stacklevel=2)
        self.chat = local_chat(self.model, self.memory_plan.settings, settings.threads,
                               settings.speculate,
                               resolve(settings.draft_model) if settings.draft_model else None)

    def with_settings(self, settings: JobSettings) -> Session:
        """This session for other job settings: the loaded model (or server connection) is
        kept when the model and the planned memory settings stay the same, else a new session
        is made."""
        same_place = all(getattr(settings, k) == getattr(self.settings, k)
                         for k in ("backend", "base_url", "server_model", "model", "threads",
                                   "speculate", "draft_model"))
        if same_place and self.model is None:
            check_settings(settings)
            self.settings = settings
            return self
        if same_place and self.model is not None and self.memory_plan is not None:
            check_settings(settings)
            new_plan = job_plan(settings, shape_from_gguf(self.model.path), self.model.path)
            if new_plan.settings == self.memory_plan.settings:
                check_plan(new_plan, settings, self.model)
                self.settings, self.memory_plan = settings, new_plan
                return self
        return Session(settings, self.server if settings.backend == "openai" else None)

    def outline(self, progress: ProgressCallback = ignore,
                cancel: threading.Event | None = None) -> Outline:
        """The job's outline: planned by the model (AgentWrite; KeyboardInterrupt once
        ``cancel`` is set), or one section (direct)."""
        s = self.settings
        if s.mode == "direct":
            return direct_outline(s.prompt, s.words)
        return draft_outline(self.chat, s.prompt, s.words, s.sampling, s.section_range,
                            progress, cancel)

    def placement(self) -> dict[str, Any]:
        """Where this session writes, as journal fields: the backend, the model and the memory
        settings in use (recorded when a job starts, and again when it goes on elsewhere)."""
        if isinstance(self.chat, OpenAIChat):
            return {"backend": "openai", "base_url": self.settings.base_url,
                    "server_model": self.chat.model, "model": self.chat.model,
                    "model_path": None, **dict.fromkeys(MEMORY_FIELDS),
                    "n_ctx": self.chat.n_ctx}
        assert self.model is not None and self.memory_plan is not None
        chosen = self.memory_plan.settings
        return {"backend": "local", "base_url": None, "server_model": None,
                "model": self.model.card.name if self.model.card else str(self.model.path),
                "model_path": str(self.model.path), "n_ctx": chosen.n_ctx,
                "kv_type": chosen.kv_type, "flash_attn": chosen.flash_attn,
                "n_gpu_layers": chosen.n_gpu_layers, "n_batch": chosen.n_batch}

    def new_job(self, root: Path | None = None, name: str | None = None) -> Job:
        return Job.create(root or jobs_dir(), self.settings, name, **self.placement())

    def run(
        self,
        job: Job,
        outline: Outline | None = None,
        progress: ProgressCallback = ignore,
        cancel: threading.Event | None = None,
        rewrite: Collection[int] = (),
    ) -> JobResult:
        """Write ``job`` to the end, planning first if it has no outline yet, and the sections
        in ``rewrite`` again; refused while another process writes it. With a time plan, the
        events say the time left, and the result what was predicted against what it took."""
        started = time.perf_counter()
        with job.writing():
            outline = outline or job.outline()
            eta = self._eta(job, outline, rewrite)
            predicted = eta.predicted if eta is not None else None
            if outline is None:
                shown = (progress if eta is None else
                         _with_time_left(progress, eta, self._outline_tokens()))
                outline = self.outline(shown, cancel)
                if eta is not None:  # the sections the model outlined, not the expected ones
                    eta = self._eta(job, outline, rewrite, eta)
            if eta is not None:
                progress = _with_time_left(progress, eta, 0)
            check_rewrite(rewrite, len(outline.sections))
            if job.outline() is None:
                job.save_outline(outline)
                job.update(state="outlined")
            if rewrite or len(job.finished()) < len(outline.sections):  # where the rest is written
                job.update(**self.placement())
            writer = Writer(self.chat, job, outline, self.settings.sampling,
                            direct=self.settings.mode == "direct", progress=progress,
                            cancel=cancel, rewrite=rewrite)
            result = writer.run()
        result.seconds = time.perf_counter() - started
        if self.model is not None:  # the model's pace for the next plans
            keep_pace(self.model.path, self.settings.mode, language(self.settings.prompt),
                      [(r.written, r.generated_tokens) for r in result.sections
                       if r.generated_tokens])
        result.predicted_seconds = predicted
        return result

    def _outline_tokens(self) -> int:
        time_plan = self.memory_plan.time if self.memory_plan else None
        return time_plan.steps[0].decode if time_plan else 0

    def _eta(self, job: Job, outline: Outline | None, rewrite: Collection[int],
             drafted: Eta | None = None) -> Eta | None:
        """The time left of this run, from the time plan (None without one: a server, or no
        speed measured here): the outline if it is to be drafted (or, ``drafted``, the time
        left while drafting it: what the outline took), then the sections to write, each its
        share of the plan's by its words."""
        plan = self.memory_plan
        time_plan = plan.time if plan else None
        if plan is None or time_plan is None:
            return None
        drafting = outline is None and self.settings.mode != "direct"
        outline_s = time_plan.steps[0].seconds if drafting else (
            time.monotonic() - drafted.started if drafted else 0.0)
        if outline is None or not outline.sections:
            return Eta([outline_s, *time_plan.section_seconds()])
        sections = sum((plan.time_for(len(outline.sections)) or time_plan).section_seconds())
        words = sum(s.words for s in outline.sections) or 1
        finished = set(job.finished()) - set(rewrite)
        return Eta([outline_s] + [0.0 if i in finished else sections * s.words / words
                                  for i, s in enumerate(outline.sections, 1)],
                   drafted.started if drafted else None)


def _with_time_left(progress: ProgressCallback, eta: Eta, outline_tokens: int
                    ) -> ProgressCallback:
    """``progress`` with each outline, prompt and writing event's time left (``left``)."""
    def report(event: Progress) -> None:
        if event.stage == "outline":
            event = replace(event, left=eta.left(0, event.done / max(1, outline_tokens)))
        elif event.stage in ("prompt", "write"):
            fraction = event.done / event.total if event.stage == "write" and event.total else 0
            event = replace(event, left=eta.left(event.step, fraction))
        progress(event)
    return report


def check_rewrite(rewrite: Collection[int], sections: int) -> None:
    """Refuse sections to write again that the outline does not have."""
    for index in rewrite:
        if not 1 <= index <= sections:
            raise SettingError(f"{{rewrite}} {index}: the job has sections 1 to {sections}")


def resume_session(job: Job, backend: str | None = None, server: Server | None = None,
                   model: str | None = None, speculate: str | None = None,
                   draft_model: str | None = None) -> Session:
    """A session with the settings a job was started with, or on another backend, server
    (``server.base_url``) or model, or decoding with other ``speculate`` (and
    ``draft_model``): the journal is the same whichever wrote it."""
    try:
        check_settings(job.meta.settings)
    except SettingError as exc:  # a job.json changed by hand: its own words, not options
        raise LwlocalError(f"{job.dir / META}: {exc}") from None
    settings = job.meta.settings.on_backend(
        backend, server.base_url if server else None, server.model if server else None, model)
    if speculate is not None:
        settings = replace(settings, speculate=speculate, draft_model=draft_model)
    return Session(settings, server if settings.backend == "openai" else None)
