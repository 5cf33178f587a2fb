"""Key bindings and what each screen does."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

HELP = """\
[b]lwlocal[/b]: plan, then write long documents on your own machine. Every finished section is
saved as it is written: quitting or a crash loses at most the section being written.

[b]Everywhere[/b]
  F1  this help            F2  Model: models and the memory plan for the target length
  F3  Compose: prompt, words, mode, settings (ctrl+g plans the outline, or writes)
  F4  Outline editor       F5  Writing            F6  Library
  ctrl+p  command palette  ctrl+q  quit

[b]Outline[/b]   a add · x/delete delete · ctrl+↑/ctrl+↓ move · ctrl+r regenerate · ctrl+w write
           (the fields below the list edit the highlighted section)
[b]Writing[/b]   p pause · r resume · c cancel (the job stays in the library)
[b]Library[/b]   o/enter open · r resume · e export (Markdown, text, HTML) · d delete

escape closes this help."""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [("escape,f1,q", "dismiss(None)", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog", id="help"):
            yield Static(HELP)
