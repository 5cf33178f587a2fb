"""Compose: the prompt, the target length, the mode and the advanced settings; then plan the
outline (AgentWrite) or write straight away (direct)."""

from __future__ import annotations

from dataclasses import replace

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.widgets import (
    Button,
    Collapsible,
    Footer,
    Header,
    Input,
    Label,
    LoadingIndicator,
    Select,
    TextArea,
)

from lwlocal.runtime.kv_cache import KV_CACHE_TYPES
from lwlocal.tui.screens.base import AppScreen
from lwlocal.util.errors import LwlocalError
from lwlocal.util.progress import Progress
from lwlocal.write.jobs import check_settings
from lwlocal.write.settings import MODES
from lwlocal.write.writer import direct_outline


class ComposeScreen(AppScreen):
    TITLE = "Compose"
    BINDINGS = [("ctrl+g", "go", "Plan / write")]

    def compose(self) -> ComposeResult:
        state = self.lw.state
        yield Header()
        with VerticalScroll(id="compose-form"):
            yield Label("What should be written?")
            yield TextArea(state.prompt, id="prompt")
            with Horizontal(classes="form-row"):
                yield Label("Words")
                yield Input(str(state.words), type="integer", id="words")
                yield Label("Mode")
                yield Select([(m, m) for m in MODES], value=state.mode, allow_blank=False,
                             id="mode")
            with Collapsible(title="Advanced", collapsed=True), Grid(id="advanced"):
                yield Label("Sections (blank: auto)")
                yield Input(str(state.sections or ""), type="integer", id="sections")
                yield Label("")
                yield Label("")
                yield Label("Temperature")
                yield Input(str(state.sampling.temperature), type="number", id="temperature")
                yield Label("Seed")
                yield Input(str(state.sampling.seed), type="integer", id="seed")
                yield Label("Context (blank: plan)")
                yield Input(str(state.n_ctx or ""), type="integer", id="ctx")
                yield Label("KV cache")
                yield Select([("plan", "")] + [(k, k) for k in KV_CACHE_TYPES],
                             value=state.kv_type or "", allow_blank=False, id="kv")
            yield Button("Plan the outline", variant="primary", id="go")
            yield LoadingIndicator(id="busy")
            yield Label("", id="compose-status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#busy").display = False
        self._label_button()

    def on_screen_resume(self) -> None:
        """The target length may have been changed on the Model screen."""
        self.query_one("#words", Input).value = str(self.lw.state.words)

    @on(Select.Changed, "#mode")
    def _label_button(self) -> None:
        direct = self.query_one("#mode", Select).value == "direct"
        self.query_one("#go", Button).label = "Write" if direct else "Plan the outline"

    def read_form(self) -> None:
        """Copy the form into the app state, refusing what cannot run."""
        state = self.lw.state
        state.prompt = self.query_one("#prompt", TextArea).text.strip()
        if not state.prompt:
            raise LwlocalError("write a prompt first")
        words = self.query_one("#words", Input).value
        state.words = int(words) if words.lstrip("-").isdigit() else 0
        state.mode = str(self.query_one("#mode", Select).value)
        temperature = self.query_one("#temperature", Input).value or "0"
        seed = self.query_one("#seed", Input).value or "0"
        state.sampling = replace(state.sampling, temperature=float(temperature), seed=int(seed))
        sections = self.query_one("#sections", Input).value
        state.sections = int(sections) if sections else None
        ctx = self.query_one("#ctx", Input).value
        state.n_ctx = int(ctx) if ctx else None
        state.kv_type = str(self.query_one("#kv", Select).value) or None
        check_settings(state.settings())

    @on(Button.Pressed, "#go")
    def action_go(self) -> None:
        try:
            self.read_form()
        except (LwlocalError, ValueError) as exc:
            self.notify(str(exc), severity="error")
            return
        self.query_one("#go").disabled = True
        self.query_one("#busy").display = True
        self.prepare()

    @work(thread=True, exclusive=True, group="compose", exit_on_error=False)
    def prepare(self) -> None:
        state = self.lw.state
        try:
            session = state.load_session(state.settings())
            if state.mode == "direct":
                outline = direct_outline(state.prompt, state.words)
            else:
                outline = session.outline(lambda e: self.app.call_from_thread(self._planning, e))
        except LwlocalError as exc:
            self.app.call_from_thread(self._done, str(exc))
            return
        state.outline = outline
        self.app.call_from_thread(self._done, None)

    def _planning(self, event: Progress) -> None:
        self.query_one("#compose-status", Label).update(
            f"planning the outline: {event.done:.0f} tokens")

    def _done(self, error: str | None) -> None:
        self.query_one("#go").disabled = False
        self.query_one("#busy").display = False
        self.query_one("#compose-status", Label).update("")
        if error:
            self.notify(error, severity="error")
        elif self.lw.state.mode == "direct":
            self.lw.start_writing()
        else:
            self.lw.open_outline()
