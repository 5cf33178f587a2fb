"""The planner's plan for a model: RAM and VRAM bars, chosen settings, one line per reason."""

from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, ProgressBar, Static

from lwlocal.memory.planner import Plan

GIB = 2**30


class MemoryPlan(Vertical):
    """Shows a :class:`Plan`; ``show(None, message)`` while there is none."""

    def compose(self) -> ComposeResult:
        yield Static("", id="plan-title")
        for name in ("ram", "vram"):
            with Horizontal(classes="bar-row"):
                yield Label(name.upper(), classes="bar-label")
                yield ProgressBar(total=1, show_eta=False, show_percentage=False,
                                  id=f"{name}-bar")
                yield Label("", id=f"{name}-text")
        yield Static("", id="plan-settings")
        yield Static("", id="plan-reasons")

    def show(self, plan: Plan | None, message: str = "") -> None:
        title = self.query_one("#plan-title", Static)
        if plan is None:
            title.update(escape(message))
            return
        verdict = "[green]fits[/]" if plan.fits else "[red]does not fit[/]"
        sizes = "from the GGUF" if plan.exact else "estimated from the card"
        title.update(f"[b]{escape(plan.model)}[/b]: {verdict} (sizes {sizes})")
        for name, used, budget in (("ram", plan.memory.ram_bytes, plan.ram_budget),
                                   ("vram", plan.memory.vram_bytes, plan.vram_budget)):
            self.query_one(f"#{name}-bar", ProgressBar).update(
                total=max(budget, 1), progress=min(used, budget))
            self.query_one(f"#{name}-text", Label).update(
                f"{used / GIB:.2f} of {budget / GIB:.2f} GiB")
        s = plan.settings
        self.query_one("#plan-settings", Static).update(
            f"ctx {s.n_ctx} · KV {s.kv_type} · flash attention "
            f"{'on' if s.flash_attn else 'off'} · GPU layers {s.n_gpu_layers} · "
            f"batch {s.n_batch} · threads {s.threads}")
        lines = [f"• {escape(r)}" for r in plan.reasons]
        lines += [f"[yellow]› {escape(r)}[/]" for r in plan.suggestions]
        self.query_one("#plan-reasons", Static).update("\n".join(lines))
