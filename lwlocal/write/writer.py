"""The writing loop: a job's outline written section by section over one engine session.

Each section is one turn of a single growing conversation (instruction, outline, sections so far),
so the model (local or on a server) only evaluates the new turn. When the next section would not
fit the context, the oldest sections are dropped from the *conversation* (never from disk): a
local model leaves them out of its KV cache and moves the rest back, without evaluating it again
(:meth:`LocalChat.move_window`); a server evaluates the shorter conversation as it does.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Collection, Iterator
from dataclasses import replace
from typing import IO

from lwlocal.runtime.chat import ChatBackend, Hooks, Message, TokenBackend, WindowBackend, continues
from lwlocal.runtime.engine import Generation, Sampling
from lwlocal.util.destination import write_error
from lwlocal.util.errors import LwlocalError, SettingError
from lwlocal.util.progress import Progress, ProgressCallback, ignore
from lwlocal.write.faults import Memory
from lwlocal.write.guard import SectionGuard, repairs_for, tidy
from lwlocal.write.journal import Job, assemble
from lwlocal.write.outline import Outline
from lwlocal.write.results import RUN_SETTINGS, JobResult, SectionReport
from lwlocal.write.review import review_job
from lwlocal.write.section_budget import SectionBudget, tokens_for
from lwlocal.write.words import (
    count_words,
    ends_sentence,
    trim_to_sentence,
)

CONTINUATIONS = 3  # requests to go on with a section a server's model ended short
KEPT_AT_A_CUT = 0.5  # a section cut mid-sentence ends at its last full stop if that keeps this
# share of its budget (a floor, 80%, would leave a dangling sentence in for a few words more)
SEED_STEP = 7919  # seeds of retried starts: the section's seed plus a multiple of this


def attempts_for(words: int) -> int:
    """Requests for a section of ``words`` at the most: its repairs, its continuations and
    the first."""
    return repairs_for(words) + CONTINUATIONS + 1


WRITE_INTRO = """\
You are an excellent writing assistant. Here is the writing instruction and the plan of the \
text, section by section.

Writing instruction:
{prompt}

Plan:
{outline}

I will ask for the sections one at a time. Only output the text of the section asked for: \
no title, no quotation marks, nothing about the writing, the plan or the other sections, and \
without repeating what is already written."""

SECTION_REQUEST = (
    "Now write section {index} of {count}, {title}, in about {words} words of plain prose: "
    "{main_point}"
)
START_NOTE = (" Begin at once with the section's own text about the subject: no title, no "
              "preface, nothing about the instructions.")
CONTINUE_REQUEST = (
    "Go on with section {index}, {title}, from where it stops: about {words} more words, "
    "without repeating what is written and without starting the next section."
)
DIRECT_REQUEST = "{prompt}\n\nWrite about {words} words."





class Writer:
    """Writes a job's sections in order over one backend, keeping the journal up to date: the
    unfinished ones, and those in ``rewrite`` again (each kept until its new text is saved)."""

    def __init__(
        self,
        chat: ChatBackend,
        job: Job,
        outline: Outline,
        sampling: Sampling,
        *,
        direct: bool = False,
        progress: ProgressCallback = ignore,
        cancel: threading.Event | None = None,
        rewrite: Collection[int] = (),
    ) -> None:
        self.chat = chat
        self.rewrite = set(rewrite)  # finished sections to write again
        self.job = job
        self.outline = outline
        self.sampling = sampling
        self.direct = direct
        self.progress = progress
        self.cancel = cancel
        self._first_kept = 1  # first section still in the conversation

    # conversation
    def _request(self, index: int) -> str:
        if self.direct:
            return DIRECT_REQUEST.format(prompt=self.outline.prompt, words=self.outline.words)
        s = self.outline.sections[index - 1]
        return SECTION_REQUEST.format(
            index=index, count=len(self.outline.sections), title=s.title,
            main_point=s.main_point or s.title, words=s.words,
        )

    def _head(self, index: int) -> str:
        if self.direct:
            return self._request(index)
        intro = WRITE_INTRO.format(prompt=self.outline.prompt, outline=self.outline.as_text())
        # the request alone follows the plan, sections left out or not: leaving them out is
        # then cutting a stretch from the conversation, which a KV cache can do in place
        return f"{intro}\n\n{self._request(index)}"

    def _context(self, index: int) -> list[Message]:
        """The conversation that asks for section ``index``."""
        first = self._first_kept
        messages = [Message("user", self._head(first))]
        for done in range(first, index):
            tokens = (self.job.section_tokens(done, self.chat.model_key)
                      if isinstance(self.chat, TokenBackend) else None)
            messages += [Message("assistant", self.job.section_text(done) or "", tokens),
                         Message("user", self._request(done + 1))]
        return messages

    def _fitting_context(self, index: int, budget: int) -> list[Message]:
        """The conversation for section ``index``, dropping the oldest sections if needed.

        When dropping, it drops enough that the context is at most half full: the window moves
        once every several sections rather than for each one, and the sections after it are
        written at a lesser depth, where a token is faster. A local model moves its KV cache's
        window in place (:meth:`_move_window`). It fails only when not even one token per word
        is left: the generous room it asks for is more than the planner sizes a context for,
        and generation stops at the end of the context anyway. A server that does not say its
        context size gets the whole conversation.
        """
        n_ctx, need = self.chat.n_ctx, tokens_for(budget)
        context = whole = self._context(index)
        if n_ctx is None or self.chat.count(context) + need <= n_ctx:
            return context
        while self._first_kept < index:
            self._first_kept += 1
            context = self._context(index)
            if self.chat.count(context) + need <= n_ctx // 2:
                break
        if self.chat.count(context) + budget > n_ctx:
            raise SettingError(
                f"section {index} ({budget} words) does not fit a context of "
                f"{n_ctx} tokens; use a larger {{n_ctx}} or smaller sections"
            )
        if len(context) < len(whole):
            self._move_window(index, whole, context)
        return context

    def _move_window(self, index: int, whole: list[Message], kept: list[Message]) -> None:
        """Have a local model leave out of its KV cache what ``kept`` leaves out of ``whole``,
        before section ``index``. It is done at the same sections when a resumed job replays
        its earlier ones, and holds the same cache then (:meth:`Engine.move_window`: the
        replay evaluates the conversation up to each move, shown as the section's prompt);
        where it cannot be done, the next request evaluates what the cache lacks."""
        if not isinstance(self.chat, WindowBackend):
            return

        def on_prefill(done: int, total: int) -> None:
            self.progress(self._event(index, "prompt", done, total))

        self.chat.move_window(whole, kept, Hooks(on_prefill=on_prefill, cancel=self.cancel))
        if self.cancel is not None and self.cancel.is_set():
            raise KeyboardInterrupt

    def _event(self, index: int, stage: str, done: float, total: float, text: str = "",
               rate: float = 0.0) -> Progress:
        """A progress event of section ``index``."""
        return Progress(stage, step=index, steps=len(self.outline.sections), done=done,
                        total=total, text=text, rate=rate,
                        message=self.outline.sections[index - 1].title)

    # writing
    def write_section(self, index: int) -> SectionReport:
        """Write section ``index`` to the journal, from its start: a part of it a stopped run
        left is written again, so that the section is the one an uninterrupted run writes
        (docs/reproducible.md).

        A fault found while it streams (see :mod:`lwlocal.write.faults`) is cut back to the
        start of its sentence and that start written again (a local model is kept from the
        token it began with), or the section ends there, as the guard decides
        (:meth:`SectionGuard.decide`). A server's model that ends a section short is asked to
        go on (``CONTINUATIONS`` times at most)."""
        section = self.outline.sections[index - 1]
        context = self._fitting_context(index, section.words)
        words_done = sum(count_words(self.job.section_text(i) or "") for i in range(1, index))
        budget = SectionBudget(section.words)
        continuing = continues(self.chat)
        # a section written again may not begin as it did
        old = self.job.section_text(index) if index in self.rewrite else None
        most_repairs = repairs_for(section.words)
        attempts = attempts_for(section.words)
        guard = SectionGuard(index, [s.title for s in self.outline.sections],
                             Memory(self.job.section_text(i) or "" for i in range(1, index)),
                             boundaries=not self.direct, avoid=[old] if old else [],
                             repairs=most_repairs)
        pace = _Pace()

        def event(stage: str, done: float, total: float, text: str = "") -> Progress:
            return self._event(index, stage, done, total, text, pace.rate())

        before = replace(self.chat.stats)
        stopped_part = bool(self.job.partial_text(index))
        with self._partial(index) as partial:
            if stopped_part:  # what a stopped run left is gone: front ends read it again
                self.progress(event("rewind", words_done, self.outline.words))

            def keep(text: str) -> None:
                """From here on the section is ``text``: in its partial file and counts."""
                with self._writing(index):
                    partial.seek(0)
                    partial.truncate()
                    partial.write(text)
                    partial.flush()
                budget.reset()
                budget.add(text)
                guard.restart(text)

            def on_text(piece: str) -> None:
                with self._writing(index):
                    partial.write(piece)
                    partial.flush()
                budget.add(piece)
                guard.add(piece)
                pace.add()
                self.progress(event("write", words_done + budget.words.count,
                                    self.outline.words, piece))

            def on_prefill(done: int, total: int) -> None:
                self.progress(event("prompt", done, total))

            def on_retry() -> None:
                keep(text)
                pace.start()

            text, stop, continued = "", "length", 0
            first = attempts if old else 0  # a rewrite takes seeds of its own
            for attempt in range(first, first + attempts):
                if text and not continuing and not text[-1].isspace():
                    text += " "  # a server's next turn goes on after a space
                    keep(text)
                hooks = Hooks(on_text=on_text, on_prefill=on_prefill, may_end=budget.may_end,
                              min_tokens=max(0, budget.floor - budget.words.count),
                              should_stop=lambda: budget.should_stop() or bool(guard.fault),
                              on_retry=on_retry, cancel=self.cancel,
                              avoid_first=tuple(guard.avoid))
                result = self._attempt(context, index, text, attempt, hooks)
                if result.stop == "cancelled":
                    raise KeyboardInterrupt
                stop, fault = result.stop, guard.fault
                if fault is None:
                    text = guard.text
                    if stop != "eog" or budget.may_end() or continued == CONTINUATIONS:
                        break
                    continued += 1  # a server's model ended short: ask it to go on
                    continue
                repair = guard.decide(budget.floor)
                if repair.action == "kept":  # no better start came: go on from this one
                    text = guard.text
                    keep(text)
                    continue
                text = guard.text[:fault.start]
                keep(text)
                self.progress(event("rewind", words_done + budget.words.count,
                                    self.outline.words))
                if repair.action == "ended":
                    stop = fault.kind
                    break
        if stop != "eog" and not ends_sentence(text):
            trimmed = trim_to_sentence(text)  # cut mid-sentence: end at the last full stop,
            if count_words(trimmed) >= section.words * KEPT_AT_A_CUT:  # if that leaves enough
                text = trimmed
        text, tidied = tidy(text, section.title)
        repairs = [r.as_dict() for r in [*guard.repairs, *tidied]]
        spelled, model = ((self.chat.reply_tokens(context, text), self.chat.model_key)
                          if isinstance(self.chat, TokenBackend) else (None, ""))
        self.job.save_section(index, text, spelled, model)  # handed back as the model wrote it
        if tidied:
            self.progress(event("rewind", words_done + count_words(text), self.outline.words))
        stats = self.chat.stats
        tokens = stats.generated_tokens - before.generated_tokens
        seconds = stats.decode_seconds - before.decode_seconds
        report = SectionReport(index, section.title, section.words, count_words(text), stop,
                               repairs, tokens, round(tokens / seconds, 2) if seconds else 0.0)
        if report.repairs:
            self.job.save_repairs(index, report.repairs)
        return report

    def _attempt(self, context: list[Message], index: int, text: str, attempt: int,
                 hooks: Hooks) -> Generation:
        """One request for section ``index`` going on from ``text``: the first as the section
        is asked for, a later one with another seed; a local model continues ``text`` itself,
        as does a server's where the server goes on with a reply, elsewhere it is asked to go
        on in a turn of its own; with nothing written yet, a server's model is asked again with
        ``START_NOTE`` (it cannot be kept from a start)."""
        section = self.outline.sections[index - 1]
        seed = self.sampling.seed + index + SEED_STEP * attempt
        sampling = Sampling(**{**vars(self.sampling), "seed": seed})
        written = count_words(text)
        max_tokens = tokens_for(max(1, section.words - written))
        if not text:
            if attempt and self.chat.remote:  # asked again
                context = [*context[:-1], Message("user", context[-1].content + START_NOTE)]
            return self.chat.complete(context, sampling, max_tokens=max_tokens, hooks=hooks)
        if continues(self.chat):
            return self.chat.continue_reply(context, text, sampling, max_tokens=max_tokens,
                                            hooks=hooks)
        more = CONTINUE_REQUEST.format(index=index, title=section.title,
                                       words=max(1, section.words - written))
        return self.chat.complete([*context, Message("assistant", text.rstrip()),
                                   Message("user", more)], sampling, max_tokens=max_tokens,
                                  hooks=hooks)

    @contextlib.contextmanager
    def _partial(self, index: int) -> Iterator[IO[str]]:
        """Section ``index``'s partial file, open and empty. Each piece is
        flushed as it is written, so closing it has nothing left to write but what a full disk
        already refused: that error is the one told, not the close's."""
        with self._writing(index):
            partial = self.job.open_partial(index)
        try:
            yield partial
        finally:
            with contextlib.suppress(OSError):
                partial.close()

    @contextlib.contextmanager
    def _writing(self, index: int) -> Iterator[None]:
        """An OSError writing section ``index``'s partial file (a full disk) as one line."""
        try:
            yield
        except OSError as exc:
            raise write_error(self.job.partial_path(index), exc) from exc

    def run(self) -> JobResult:
        """Write every unfinished section, then assemble the document."""
        started = time.perf_counter()
        self.job.update(state="writing", pid=os.getpid(), reason=None)
        reports = []
        try:
            self.job.reserve()
            texts = [self.job.section_text(i) for i in range(1, len(self.outline.sections) + 1)]
            last = max((i for i, text in enumerate(texts, 1)
                        if text is None or i in self.rewrite), default=0)
            for index, text in enumerate(texts, 1):
                if text is None or index in self.rewrite:
                    reports.append(self.write_section(index))
                else:
                    s = self.outline.sections[index - 1]
                    if index < last:  # the conversation leaves out (and the window moves)
                        self._fitting_context(index, s.words)  # as when it was written
                    reports.append(SectionReport(index, s.title, s.words, count_words(text),
                                                 "journal"))
            path = self.job.save_document(self.document())
        except BaseException as exc:
            self._interrupted(exc)
            raise
        self.job.release()
        result = JobResult(
            job=self.job.id, document_path=str(path), words=sum(r.written for r in reports),
            planned_words=self.outline.planned_words, sections=reports,
            stats=self.chat.stats.as_dict(), seconds=time.perf_counter() - started,
            settings={k: getattr(self.job.meta.settings, k) for k in RUN_SETTINGS},
            review=review_job(self.job).as_dict(),
        )
        self.job.update(state="done", pid=None, result=result.as_dict())
        return result

    def _interrupted(self, exc: BaseException) -> None:
        """Mark the job interrupted, with the error's line as the reason, in the room set
        aside for it (a full disk takes job.json's word all the same); should even that fail,
        a dead writer's "writing" reads as interrupted, and the first error is the one to
        tell."""
        self.job.release()
        with contextlib.suppress(LwlocalError):
            self.job.update(state="interrupted", pid=None,
                            reason=str(exc) if isinstance(exc, LwlocalError) else None)

    def document(self) -> str:
        """The whole text from the journal: sections under their titles (direct: the text)."""
        texts = [self.job.section_text(i) or "" for i in range(1, len(self.outline.sections) + 1)]
        return assemble(self.outline, texts, self.direct)


class _Pace:
    """Tokens per second of a reply as it streams: the tokens after its first one over the
    time since the first one (0 until there are two)."""

    def __init__(self) -> None:
        self.start()

    def start(self) -> None:
        self._first, self._tokens = 0.0, 0

    def add(self) -> None:
        if not self._tokens:
            self._first = time.perf_counter()
        self._tokens += 1

    def rate(self) -> float:
        elapsed = time.perf_counter() - self._first
        return (self._tokens - 1) / elapsed if self._tokens > 1 and elapsed > 0 else 0.0
