"""Compose: the prompt, the target length, the mode and the advanced settings; then plan the
outline (AgentWrite) or write straight away (direct)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Collapsible, Input, Label, Select, TextArea

from lwlocal.models.catalogue import resolve
from lwlocal.runtime.kv_cache import KV_CACHE_TYPES
from lwlocal.runtime.speculate import SPECULATE_MODES
from lwlocal.tui.guard import guarded
from lwlocal.tui.messages import error_text
from lwlocal.tui.screens.base import AppScreen
from lwlocal.tui.widgets.bars import downloaded
from lwlocal.tui.widgets.task_line import TaskLine
from lwlocal.util.cpu import run_in_background
from lwlocal.util.errors import LwlocalError, SettingError
from lwlocal.util.progress import Progress
from lwlocal.write.jobs import check_settings
from lwlocal.write.outline import Outline
from lwlocal.write.outlining import direct_outline
from lwlocal.write.settings import MODES

# a draft model is the command line's (the form has no field for one)
APP_SPECULATE_MODES = (*(m for m in SPECULATE_MODES if m != "draft"), "auto")

# what the Words field's note says of where the length comes from
TARGET_SOURCES = {"instruction": "from prompt", "default": "default", "option": ""}


def task_text(event: Progress) -> str:
    """What a step of drafting the outline is doing, in a few words."""
    if event.stage == "prompt":
        return f"reading the prompt: {event.done:,.0f} of {event.total:,.0f} tokens"
    return f"drafting the outline: {event.done:,.0f} tokens"


class ComposeScreen(AppScreen):
    MODE = "compose"
    AUTO_FOCUS = "#prompt"
    BINDINGS = [Binding("ctrl+g", "go", "Outline / write", priority=True),
                Binding("escape", "cancel", "Cancel")]

    class Outlining(Message):
        """How drafting the outline goes (from its thread)."""

        def __init__(self, event: Progress) -> None:
            super().__init__()
            self.event = event

    class Outlined(Message):
        """Outlining ended: with an outline, an error, or cancelled."""

        def __init__(self, outline: Outline | None, error: str | None = None) -> None:
            super().__init__()
            self.outline, self.error = outline, error

    def body(self) -> ComposeResult:
        state = self.lw.state
        with Vertical(id="compose-form"):
            yield Label("What should be written?")
            yield TextArea(state.prompt, id="prompt")
            with Horizontal(classes="form-row"):
                yield Label("Words")
                yield Input("" if state.words is None else str(state.words), type="integer",
                            id="words", placeholder="from the prompt")  # filled in on mount
                yield Label("", id="words-source")
                yield Label("Mode")
                yield Select([(m, m) for m in MODES], value=state.mode, allow_blank=False,
                             id="mode")
                yield Label("", id="compose-model")
            with Collapsible(title="Advanced", collapsed=True, id="advanced"):
                with Horizontal(classes="advanced-row"):
                    yield Label("Sections")
                    yield Input(str(state.sections or ""), type="integer", id="sections",
                                placeholder="auto", compact=True)
                    yield Label("Temperature")
                    yield Input(str(state.sampling.temperature), type="number",
                                id="temperature", compact=True)
                    yield Label("Seed")
                    yield Input(str(state.sampling.seed), type="integer", id="seed",
                                compact=True)
                with Horizontal(classes="advanced-row"):
                    yield Label("Context")
                    yield Input(str(state.n_ctx or ""), type="integer", id="ctx",
                                placeholder="planned", compact=True)
                    yield Label("KV cache")
                    yield Select([("planned", "")] + [(k, k) for k in KV_CACHE_TYPES],
                                 value=state.kv_type or "", allow_blank=False, id="kv",
                                 compact=True)
                    yield Label("Speculate")  # a draft model is the command line's
                    yield Select([(m, m) for m in APP_SPECULATE_MODES], value=state.speculate,
                                 allow_blank=False, id="speculate", compact=True)
            with Horizontal(id="go-row"):
                yield Button("Plan the outline", variant="primary", id="go")
                yield TaskLine(id="compose-task")

    def on_mount(self) -> None:
        self._label_button()

    @guarded
    def on_screen_resume(self) -> None:
        """The target length or the model may have been changed on the Model screen."""
        state = self.lw.state
        self._show_target()
        model = Text.assemble("model ", (state.model, "b"), (
            "" if downloaded(state.model) else (" (not downloaded)", "red")), " · F2")
        self.query_one("#compose-model", Label).update(model)

    # the form, kept in the app's state as it is edited
    @on(Input.Blurred, "#words")
    @guarded
    def _show_target(self) -> None:
        """The length the job will have, and where it comes from unless the user typed it
        (not written into the field while the user edits it)."""
        state = self.lw.state
        target = state.target
        words = self.query_one("#words", Input)
        if state.words is None and not words.has_focus and words.value != str(target.words):
            with words.prevent(Input.Changed):
                words.value = str(target.words)
        self.query_one("#words-source", Label).update(TARGET_SOURCES[target.source])

    @on(TextArea.Changed, "#prompt")
    @guarded
    def _prompt_changed(self, event: TextArea.Changed) -> None:
        self.lw.state.prompt = event.text_area.text
        if self.lw.state.words is None:  # the length follows the prompt
            self._show_target()
            self.lw.refresh_status()
        self.lw.keep_draft()

    @on(Input.Changed, "#words")
    @guarded
    def _words_changed(self, event: Input.Changed) -> None:
        value = event.value.strip()
        if value.isdigit() and int(value) > 0 or not value:
            self.lw.state.set_words(int(value) if value else None)
            self._show_target()
            self.lw.refresh_status()
            self.lw.keep_draft()

    @on(Select.Changed, "#mode")
    @guarded
    def _label_button(self) -> None:
        mode = str(self.query_one("#mode", Select).value)
        self.lw.state.mode = mode
        self._show_target()  # a default length is the mode's
        self.query_one("#go", Button).label = "Write" if mode == "direct" else "Plan the outline"
        self.lw.refresh_status()
        self.lw.keep_draft()

    def _number(self, field: str, setting: str, kind: type[int] | type[float]) -> float | None:
        text = self.query_one(f"#{field}", Input).value.strip()
        try:
            return kind(text) if text else None
        except ValueError:
            raise SettingError(f"{{{setting}}} {text!r}: not a number") from None

    def read_form(self) -> None:
        """Copy the form into the app state, refusing what cannot run."""
        state = self.lw.state
        state.prompt = self.query_one("#prompt", TextArea).text.strip()
        if not state.prompt:
            raise LwlocalError("write a prompt first")
        words = self._number("words", "words", int)
        state.set_words(None if words is None else int(words))  # None: the prompt's length
        state.mode = str(self.query_one("#mode", Select).value)
        temperature = self._number("temperature", "temperature", float) or 0.0
        seed = int(self._number("seed", "seed", int) or 0)
        state.sampling = replace(state.sampling, temperature=temperature, seed=seed)
        sections = self._number("sections", "sections", int)
        state.sections = int(sections) if sections is not None else None
        ctx = self._number("ctx", "n_ctx", int)
        state.n_ctx = int(ctx) if ctx is not None else None
        state.kv_type = str(self.query_one("#kv", Select).value) or None
        state.speculate = str(self.query_one("#speculate", Select).value)
        check_settings(state.settings())
        resolve(state.model)  # a model that is not downloaded says how to get it

    # the outline
    @on(Button.Pressed, "#go")
    @guarded
    def action_go(self) -> None:
        try:
            self.read_form()
        except LwlocalError as exc:
            self.lw.show_error(exc)
            return
        state = self.lw.state
        if state.mode == "direct":
            state.outline = direct_outline(state.prompt, state.target.words)
            self.lw.start_writing()
            return
        cancel = self.lw.begin_task("drafting the outline", self.MODE)
        if cancel is None:
            return
        self.query_one("#go").disabled = True
        self.query_one(TaskLine).start("loading the model…")
        self.refresh_bindings()
        self.draft_outline(cancel, self.query_one(TaskLine).say)

    @work(thread=True, exclusive=True, group="compose", exit_on_error=False)
    def draft_outline(self, cancel: threading.Event, say: Callable[[str], None]) -> None:
        state = self.lw.state
        run_in_background()  # the interface keeps its share of the cores
        try:
            self.lw.choose_speculation(say)
            if cancel.is_set():
                raise KeyboardInterrupt
            session = state.load_session(state.settings())
            if cancel.is_set():
                raise KeyboardInterrupt
            outline = session.outline(self._progress, cancel)
        except KeyboardInterrupt:
            self.post_message(self.Outlined(None))
        except Exception as exc:  # noqa: BLE001 - any failure ends as one line on screen
            self.post_message(self.Outlined(None, error_text(exc)))
        else:
            self.post_message(self.Outlined(outline))

    def _progress(self, event: Progress) -> None:
        """From the outline's thread: hand the event to the screen."""
        self.post_message(self.Outlining(event))

    @on(Outlining)
    @guarded
    def _outlining(self, message: Outlining) -> None:
        if message.event.stage == "notice":  # what the outline's check changed
            self.notify(message.event.message, timeout=10)
            return
        if self.lw.state.task and not self.lw.state.task.cancel.is_set():
            self.query_one(TaskLine).say(task_text(message.event))
        if message.event.stage == "prompt" or message.event.done == 1:  # the model is loaded
            self.lw.refresh_status()

    @on(Outlined)
    @guarded
    def _outlined(self, message: Outlined) -> None:
        self.lw.end_task()
        self.query_one("#go").disabled = False
        self.query_one(TaskLine).stop()
        self.refresh_bindings()
        if message.error:
            self.notify(message.error, severity="error")
        elif message.outline is None:
            self.notify("outline cancelled")
        else:
            self.lw.state.outline = message.outline
            self.lw.keep_draft()
            self.lw.open_outline()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Esc (cancel) only while this screen drafts an outline."""
        if action == "cancel":
            task = self.lw.state.task
            return task is not None and task.mode == self.MODE
        return True

    @on(Button.Pressed, "#cancel-task")
    def action_cancel(self) -> None:
        task = self.lw.state.task
        if task is not None and task.mode == self.MODE:
            task.cancel.set()
            self.query_one(TaskLine).stopping()
