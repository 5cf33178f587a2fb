"""Measurements kept in a JSON file of the lwlocal home: an object of entries, each under the
key of what it holds for (a machine, a build, a model file). Entries are kept one writer at a
time (a lock file beside), so jobs finishing together, in threads or processes, each add theirs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock

from lwlocal.util.atomic import atomic_write
from lwlocal.util.json_object import json_object


def kept_entries(path: Path) -> dict[str, Any]:
    """The entries kept in ``path``; none where it is missing or not such an object."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError):  # missing, unreadable, not UTF-8
        return {}
    return json_object(text) or {}


def keep_entry(path: Path, key: str, entry: dict[str, Any]) -> None:
    """``entry`` kept in ``path`` under ``key``, the others as they were."""
    change_entry(path, key, lambda _: entry)


def change_entry(path: Path, key: str, change: Callable[[Any], dict[str, Any]]) -> None:
    """The entry under ``key`` in ``path`` replaced by ``change`` of it (None where there is
    none), read and written under the lock, so that no other writer's change is lost."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path.with_name(f".{path.name}.lock")):
        entries = kept_entries(path)
        atomic_write(path, json.dumps(entries | {key: change(entries.get(key))}, indent=1))
