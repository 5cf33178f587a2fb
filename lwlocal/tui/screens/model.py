"""Model: the cards and local GGUFs, and the memory plan of the chosen one for the target
length (the prompt counted in)."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import DataTable, Input, Label

from lwlocal.memory.planner import Plan
from lwlocal.models.catalogue import CARDS, CatalogEntry, catalog, get_command
from lwlocal.models.gguf_file import file_quant
from lwlocal.tui.guard import guarded
from lwlocal.tui.messages import error_text
from lwlocal.tui.screens.base import AppScreen
from lwlocal.tui.widgets.memory_plan import MemoryPlan
from lwlocal.write.jobs import model_plan
from lwlocal.write.settings import JobSettings


class ModelScreen(AppScreen):
    MODE = "model"
    AUTO_FOCUS = "#models"

    class Planned(Message):
        """A plan worked out (or why not) for a model and a number of words."""

        def __init__(self, model: str, words: int, plan: Plan | None, error: str) -> None:
            super().__init__()
            self.model, self.words, self.plan, self.error = model, words, plan, error

    def body(self) -> ComposeResult:
        yield DataTable(id="models", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="words-row"):
            yield Label("Target words")
            yield Input(str(self.lw.state.target.words), type="integer", id="model-words")
        yield MemoryPlan(id="memory-plan")

    def on_mount(self) -> None:
        self._planning = False  # a plan worker is running
        self._planned: tuple[str, JobSettings] | None = None  # what the plan shown is for
        table = self.query_one(DataTable)
        table.add_columns("model", "quant", "size", "local file")
        self.entries: list[CatalogEntry] = catalog()
        for entry in self.entries:
            size = f"{(entry.size_bytes or 0) / 2**20:,.0f} MiB" if entry.path else "-"
            table.add_row(Text(entry.name), "…" if entry.path else "-", size,
                          "yes" if entry.path else "not downloaded", key=entry.name)
        names = [e.name for e in self.entries]
        if self.lw.state.model in names:
            table.move_cursor(row=names.index(self.lw.state.model))
        self.read_quants()

    @guarded
    def on_screen_resume(self) -> None:
        """Words and the prompt may have been edited on the Compose screen."""
        words = self.query_one("#model-words", Input)
        shown = str(self.lw.state.target.words)
        if words.value != shown:
            with words.prevent(Input.Changed):
                words.value = shown
        self.replan()

    @work(thread=True, group="quants", exit_on_error=False)
    def read_quants(self) -> None:
        for entry in self.entries:
            if entry.path:
                quant = file_quant(entry.path)
                self.app.call_from_thread(self._set_quant, entry.name, quant)

    def _set_quant(self, name: str, quant: str) -> None:
        table = self.query_one(DataTable)
        table.update_cell(name, table.ordered_columns[1].key, Text(quant))

    @on(DataTable.RowHighlighted, "#models")
    @guarded
    def choose(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value and event.row_key.value != self.lw.state.model:
            self.lw.state.model = event.row_key.value
            self.lw.refresh_status()
            self.lw.keep_draft()
            self.replan()

    @on(Input.Changed, "#model-words")
    @guarded
    def words_changed(self, event: Input.Changed) -> None:
        if event.value.isdigit() and int(event.value) > 0:
            self.lw.state.set_words(int(event.value))
            self.lw.refresh_status()
            self.lw.keep_draft()
            self.replan()

    # one plan worker at a time; a change while it runs plans again when it is done
    def replan(self) -> None:
        state = self.lw.state
        wanted = (state.model, state.settings())
        if wanted == self._planned or self._planning:
            return
        self._planning = True
        self._planned = wanted
        self.query_one(MemoryPlan).show(None, f"planning {state.model} for {state.target.words:,} "
                                              "words…")
        self.compute_plan(*wanted)

    @work(thread=True, group="plan", exit_on_error=False)
    def compute_plan(self, model: str, settings: JobSettings) -> None:
        try:
            chosen = model_plan(model, settings, machine=self.lw.state.machine).plan
        except Exception as exc:  # noqa: BLE001 - any failure ends as one line on screen
            self.post_message(self.Planned(model, settings.words, None, error_text(exc)))
        else:
            self.post_message(self.Planned(model, settings.words, chosen, ""))

    @on(Planned)
    @guarded
    def _show_plan(self, message: Planned) -> None:
        self._planning = False
        card = CARDS.get(message.model)
        entry = next((e for e in self.entries if e.name == message.model), None)
        missing = card is not None and entry is not None and entry.path is None
        self.query_one(MemoryPlan).show(message.plan, message.error, message.words,
                                        message.model,
                                        get_command(card) if missing and card else None)
        self.replan()  # the model or the words changed meanwhile
