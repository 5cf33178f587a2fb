"""A dataset folder's two lists: ``data.jsonl``, the kept examples in LongWriter-6k's layout, and
``rejected.jsonl``, each item left out with why. Each item is appended to one of them as it is
decided, on disk before the next; so a rerun knows what was decided and never decides it again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lwlocal.dataset.filters import Rejection
from lwlocal.dataset.layout import Example
from lwlocal.util.atomic import append_line
from lwlocal.util.destination import write_error
from lwlocal.util.errors import LwlocalError
from lwlocal.write.batch import BatchItem

DATA = "data.jsonl"
REJECTED = "rejected.jsonl"


def read_json_lines(path: Path) -> list[Any]:
    """The JSON values of ``path``'s lines (none if it is missing); a last line cut short (a
    build killed as it appended) is left out; one line naming the file and line for one that
    cannot be read."""
    if not path.is_file():
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LwlocalError(f"{path}: cannot read ({exc})") from None
    lines = text.split("\n")[:-1]  # what follows the last newline was never finished
    values = []
    for number, line in enumerate(lines, 1):
        try:
            values.append(json.loads(line))
        except (ValueError, RecursionError) as exc:
            raise LwlocalError(f"{path}:{number}: not a JSON line ({exc})") from None
    return values


def read_examples(folder: Path) -> list[Example]:
    """The kept examples of a dataset folder."""
    path = folder / DATA
    examples = []
    for number, data in enumerate(read_json_lines(path), 1):
        try:
            examples.append(Example.from_messages(data))
        except ValueError as exc:
            raise LwlocalError(f"{path}:{number}: {exc}") from None
    return examples


def read_rejected(folder: Path) -> list[dict[str, Any]]:
    """The items a dataset folder left out, each with ``id``, ``instruction``, ``reasons`` and
    ``why``."""
    path = folder / REJECTED
    rows = read_json_lines(path)
    for number, row in enumerate(rows, 1):
        if not isinstance(row, dict) or not isinstance(row.get("reasons"), list):
            raise LwlocalError(f"{path}:{number}: not a rejected item (id, reasons, why)")
    return rows


def _cut_unfinished_line(path: Path) -> None:
    """Take away what follows the last newline of ``path``: a line a killed build left half
    written, which the next line would otherwise be glued to."""
    if not path.is_file():
        return
    try:
        with path.open("rb+") as handle:
            data = handle.read()
            if data and not data.endswith(b"\n"):
                handle.truncate(data.rfind(b"\n") + 1)
    except OSError as exc:
        raise write_error(path, exc) from exc


class Ledger:
    """What a dataset folder has decided: kept instructions and rejected ids, and the appending
    of each new decision."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        for name in (DATA, REJECTED):
            _cut_unfinished_line(folder / name)
        self.kept = {example.instruction for example in read_examples(folder)}
        self.rejected = {str(row.get("id")) for row in read_rejected(folder)}

    def decided(self, item: BatchItem) -> bool:
        return item.prompt in self.kept or item.id in self.rejected

    def keep(self, item: BatchItem, document: str) -> None:
        example = Example(item.prompt, document)
        append_line(self.folder / DATA,
                    json.dumps(example.as_messages(), ensure_ascii=False) + "\n")
        self.kept.add(item.prompt)

    def reject(self, item: BatchItem, rejections: Sequence[Rejection],
               **measured: Any) -> None:
        """Record ``item`` as left out for ``rejections``, with what was ``measured`` of its
        document (words, language)."""
        row = {"id": item.id, "instruction": item.prompt,
               "reasons": [r.reason for r in rejections],
               "why": [r.why for r in rejections], **measured}
        append_line(self.folder / REJECTED, json.dumps(row, ensure_ascii=False) + "\n")
        self.rejected.add(item.id)
