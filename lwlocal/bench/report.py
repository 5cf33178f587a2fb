"""The benchmark's summary as JSON and as a Markdown table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lwlocal.bench.items import RANGES
from lwlocal.util.atomic import atomic_write

COLUMNS = (["model", "mode", "items", "errors", "length_score"]
           + [f"length_score_{name}" for name, _, _ in RANGES]
           + ["quality_score", "score", "generated_tokens", "decode_tokens_per_s", "seconds"])
HEADERS = (["model", "mode", "items", "errors", "S_l"] + [f"S_l {name}" for name, _, _ in RANGES]
           + ["S_q", "S", "tokens", "decode tok/s", "seconds"])


def cells(row: dict[str, Any]) -> list[str]:
    return ["-" if row[c] is None else Path(str(row[c])).name if c == "model" else str(row[c])
            for c in COLUMNS]


SUMMARY_FILES = ("summary.json", "summary.md")


def write_summary(out: Path, summary: list[dict[str, Any]]) -> None:
    as_json, as_markdown = (out / name for name in SUMMARY_FILES)
    atomic_write(as_json, json.dumps(summary, ensure_ascii=False, indent=1))
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(cells(row)) + " |" for row in summary]
    atomic_write(as_markdown, "\n".join(lines) + "\n")
