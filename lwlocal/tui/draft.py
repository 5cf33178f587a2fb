"""The compose form and the outline as the user left them: written to a draft file as they
are edited, read back when the app starts again. A draft that cannot be read is left alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lwlocal.tui.state import TuiState
from lwlocal.util.atomic import atomic_write
from lwlocal.write.outline import Outline, Section
from lwlocal.write.settings import MODES

SCHEMA_VERSION = 1
DRAFT_FILE = "tui-draft.json"  # in the data folder


def save_draft(state: TuiState, path: Path) -> None:
    """The prompt, Words, mode, model and outline of ``state``, to ``path``."""
    outline = state.outline.as_dict() if state.outline else None
    atomic_write(path, json.dumps({"schema": SCHEMA_VERSION, "prompt": state.prompt,
                                   "words": state.words, "mode": state.mode,
                                   "model": state.model, "outline": outline},
                                  ensure_ascii=False))


def load_draft(state: TuiState, path: Path) -> None:
    """Fill ``state`` in from the draft at ``path``, when there is a readable one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("schema") != SCHEMA_VERSION:
            return
        prompt, words, mode, model = (data["prompt"], data["words"], data["mode"],
                                      data["model"])
        outline = _outline(data["outline"]) if data["outline"] is not None else None
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return
    if not (isinstance(prompt, str) and mode in MODES and isinstance(model, str)
            and (words is None or isinstance(words, int) and words > 0)):
        return
    state.prompt, state.words, state.mode, state.model = prompt, words, mode, model
    state.outline = outline


def _outline(data: dict[str, Any]) -> Outline:
    """An outline as :meth:`Outline.as_dict` wrote it, its sections as the user left them."""
    sections = [Section(str(s["title"]), str(s["main_point"]), int(s["words"]))
                for s in data["sections"]]
    return Outline(str(data["prompt"]), int(data["words"]), sections)
