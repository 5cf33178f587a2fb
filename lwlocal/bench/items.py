"""Benchmark prompts: JSON lines with ``id``, ``prompt``, ``type`` and ``length`` (required
words), the fields of the public LongBench-Write file, so that file can be passed as it is."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from lwlocal.util.errors import LwlocalError

SAFE_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")

# LongBench-Write's length ranges: (label, lowest required length, highest)
RANGES = (("<500", 0, 499), ("500-2k", 500, 1999), ("2k-4k", 2000, 3999), (">4k", 4000, 10**9))


@dataclass(frozen=True)
class BenchItem:
    id: str
    prompt: str
    type: str
    length: int

    @property
    def range(self) -> str:
        return next(label for label, low, high in RANGES if low <= self.length <= high)


def load_items(path: Path | None = None) -> list[BenchItem]:
    """The prompts of ``path``, or the set shipped with lwlocal (written for it)."""
    source = str(path) if path else "lwlocal:bench/data/prompts.jsonl"
    try:
        text = (path.read_text(encoding="utf-8") if path else
                (resources.files("lwlocal.bench") / "data" / "prompts.jsonl").read_text(
                    encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise LwlocalError(f"{source}: cannot read the prompts ({exc})") from exc
    items, seen = [], set()
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            item = BenchItem(str(data["id"]), str(data["prompt"]), str(data.get("type", "")),
                             int(data["length"]))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, OverflowError) as exc:
            raise LwlocalError(f"{source}:{number}: not a prompt line with id, prompt and "
                               f"length ({exc})") from exc
        if item.length <= 0 or item.id in seen:
            raise LwlocalError(f"{source}:{number}: " + (
                f"duplicate id {item.id!r}" if item.id in seen else "length must be positive"))
        if not SAFE_ID.fullmatch(item.id):
            raise LwlocalError(f"{source}:{number}: id {item.id!r} must be letters, digits, "
                               "'.', '_' or '-' (it names the job's folder)")
        seen.add(item.id)
        items.append(item)
    if not items:
        raise LwlocalError(f"{source}: no prompts")
    return items
