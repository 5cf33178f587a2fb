"""Prompt files (JSON lines, as `batch` and `bench` read them) for tests."""

from __future__ import annotations

import json
from pathlib import Path

NOTES = ("A note on tea.", "A note on coffee.", "A note on cocoa.")


def prompt_file(folder: Path, length: int, texts: tuple[str, ...] = NOTES) -> Path:
    """``folder/prompts.jsonl`` with one prompt per text, ids p0, p1, … and ``length`` words."""
    path = folder / "prompts.jsonl"
    path.write_text("".join(json.dumps({"id": f"p{n}", "prompt": text, "length": length}) + "\n"
                            for n, text in enumerate(texts)))
    return path
