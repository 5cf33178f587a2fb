"""The planner's plan for a model: RAM (and, with a GPU, VRAM) bars, chosen settings, one line
per reason; for a model not downloaded, the command that gets it."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, ProgressBar, Static

from lwlocal.memory.planner import Plan
from lwlocal.tui.messages import in_app_words

GIB = 2**30


class MemoryPlan(Vertical):
    """Shows a :class:`Plan` for a number of words; ``show(None, message)`` while there is
    none."""

    def compose(self) -> ComposeResult:
        yield Static("", id="plan-title")
        for name in ("ram", "vram"):
            with Horizontal(classes="bar-row", id=f"{name}-row"):
                yield Label(name.upper(), classes="bar-label")
                yield ProgressBar(total=1, show_eta=False, show_percentage=False,
                                  id=f"{name}-bar")
                yield Label("", id=f"{name}-text")
        yield Static("", id="plan-settings")
        yield Static("", id="plan-reasons")

    def show(self, plan: Plan | None, message: str = "", words: int = 0, name: str = "",
             get_command: str | None = None) -> None:
        """``plan`` of the model ``name`` for ``words`` words; ``get_command`` when the model
        is not downloaded."""
        title = self.query_one("#plan-title", Static)
        for part in ("#ram-row", "#vram-row", "#plan-settings", "#plan-reasons"):
            self.query_one(part).display = plan is not None
        if plan is None:
            title.update(Text(message))
            return
        if get_command:
            verdict = Text.assemble(
                ("not downloaded", "yellow"),
                f" (it would {'' if plan.fits else 'not '}fit {words:,} words) · get it with: ",
                (get_command, "b"))
        else:
            verdict = Text.assemble(("fits", "green") if plan.fits else ("does not fit", "red"),
                                    f" {words:,} words")
        sizes = "from the GGUF" if plan.exact else "estimated from the card"
        title.update(Text.assemble((name or plan.model, "b"), ": ", verdict,
                                   f" (sizes {sizes})"))
        gpu = plan.vram_budget > 0 or plan.memory.vram_bytes > 0
        self.query_one("#vram-row").display = gpu
        for name, used, budget in (("ram", plan.memory.ram_bytes, plan.ram_budget),
                                   ("vram", plan.memory.vram_bytes, plan.vram_budget)):
            self.query_one(f"#{name}-bar", ProgressBar).update(
                total=max(budget, 1), progress=min(used, budget))
            self.query_one(f"#{name}-text", Label).update(
                f"{used / GIB:.2f} of {budget / GIB:.2f} GiB")
        s = plan.settings
        placement = f"GPU layers {s.n_gpu_layers}" if gpu else "CPU only"
        self.query_one("#plan-settings", Static).update(
            f"context {s.n_ctx:,} · KV {s.kv_type} · flash attention "
            f"{'on' if s.flash_attn else 'off'} · {placement} · batch {s.n_batch} · "
            f"threads {s.threads}")
        lines = [Text(f"• {in_app_words(r)}") for r in plan.reasons]
        lines += [Text(f"› {in_app_words(r)}", style="yellow") for r in plan.suggestions]
        self.query_one("#plan-reasons", Static).update(Text("\n").join(lines))
