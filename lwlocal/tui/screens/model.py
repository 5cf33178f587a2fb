"""Model: the cards and local GGUFs, and the memory plan of the chosen one for the target
length."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import DataTable, Footer, Header, Input, Label
from textual.worker import get_current_worker

from lwlocal.models.catalogue import CatalogEntry, catalog
from lwlocal.models.gguf_file import file_quant
from lwlocal.tui.screens.base import AppScreen
from lwlocal.tui.widgets.memory_plan import MemoryPlan
from lwlocal.util.errors import LwlocalError
from lwlocal.write.jobs import model_plan


class ModelScreen(AppScreen):
    TITLE = "Model"

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="models", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="words-row"):
            yield Label("Target words")
            yield Input(str(self.lw.state.words), type="integer", id="model-words")
        yield MemoryPlan(id="memory-plan")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("model", "quant", "size", "local file")
        self.entries: list[CatalogEntry] = catalog()
        for entry in self.entries:
            size = f"{(entry.size_bytes or 0) / 2**20:,.0f} MiB" if entry.path else "-"
            table.add_row(entry.name, "…" if entry.path else "-", size,
                          "yes" if entry.path else "not downloaded", key=entry.name)
        names = [e.name for e in self.entries]
        if self.lw.state.model in names:
            table.move_cursor(row=names.index(self.lw.state.model))
        self.read_quants()
        self.replan()

    @work(thread=True, group="quants", exit_on_error=False)
    def read_quants(self) -> None:
        for entry in self.entries:
            if entry.path:
                quant = file_quant(entry.path)
                self.app.call_from_thread(self._set_quant, entry.name, quant)

    def _set_quant(self, name: str, quant: str) -> None:
        table = self.query_one(DataTable)
        table.update_cell(name, table.ordered_columns[1].key, quant)

    @on(DataTable.RowHighlighted, "#models")
    def choose(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value and event.row_key.value != self.lw.state.model:
            self.lw.state.model = event.row_key.value
            self.replan()

    @on(Input.Changed, "#model-words")
    def words_changed(self, event: Input.Changed) -> None:
        if event.value.isdigit() and int(event.value) > 0:
            self.lw.state.words = int(event.value)
            self.replan()

    def replan(self) -> None:
        self.query_one(MemoryPlan).show(None, f"planning {self.lw.state.model}…")
        self.compute_plan()

    @work(thread=True, exclusive=True, group="plan", exit_on_error=False)
    def compute_plan(self) -> None:
        state = self.lw.state
        try:
            chosen, message = model_plan(state.model, state.settings(),
                                         machine=state.machine).plan, ""
        except LwlocalError as exc:
            chosen, message = None, str(exc)
        if not get_current_worker().is_cancelled:  # a newer plan is on its way
            self.app.call_from_thread(self.query_one(MemoryPlan).show, chosen, message)
