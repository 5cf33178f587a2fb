"""Key bindings and what each screen does."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

HELP = """\
[b]lwlocal[/b]: plan, then write long documents on your own machine.
Each section is saved as it is written: quitting, a pause or a crash
keeps every finished section, and resuming writes the one cut short
again from its start, to the same text.

[b]Everywhere[/b]  F1 help · F2 Model · F3 Compose · F4 Outline
            F5 Writing · F6 Library · ctrl+p commands · ctrl+q quit
[b]Model[/b]       the models, and the memory plan for the target length
[b]Compose[/b]     ctrl+g plans the outline (direct mode: writes)
            Esc or Cancel stops loading or outlining
[b]Outline[/b]     a add · x/del delete · u undo · ctrl+↑/↓ move
            ctrl+r draft again · ctrl+w write · Esc back to the list
[b]Writing[/b]     p/Esc pause · r resume · c cancel · e export
[b]Library[/b]     enter/o open · r resume · e export · d delete

Esc closes this help."""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [("escape,f1,q", "dismiss(None)", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog", id="help"):
            yield Static(HELP)
