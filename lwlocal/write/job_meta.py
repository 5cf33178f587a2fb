"""A job's ``job.json`` as typed data: its settings and state, read with their checks and
migrated from earlier layouts."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lwlocal.util.errors import LwlocalError
from lwlocal.write.settings import JobSettings

# job.json's layout: 1 added "schema" (files without it, 0, have the same fields); 2 added DRY to
# the sampling settings, so a job of an earlier layout reads as written without it; 3 calls a
# job with its outline and nothing written "outlined" (earlier: "planned").
SCHEMA_VERSION = 3
STATES = ("new", "outlined", "writing", "interrupted", "done")
MAX_TIME = 2.0**37  # seconds since 1970 (the year 6325): a date any front end can show


@dataclass
class JobMeta:
    """A job's ``job.json``: its settings, the model file it runs on (local backend), how far it
    got (``state``, the writing process's ``pid``, and the ``reason`` an error stopped it for)
    and, once done, its ``result``."""

    settings: JobSettings
    created: float = 0.0
    state: str = "new"
    pid: int | None = None
    model_path: str | None = None
    result: dict[str, Any] | None = None
    reason: str | None = None  # why an interrupted job stopped, when an error stopped it

    def to_dict(self) -> dict[str, Any]:
        extra = {k: getattr(self, k) for k in ("created", "state", "pid", "model_path", "result",
                                               "reason")}
        return {"schema": SCHEMA_VERSION, **asdict(self.settings), **extra}

    @classmethod
    def from_dict(cls, data: Any, source: Path) -> JobMeta:
        """Read (and migrate) a ``job.json``; one line naming the file for what cannot be."""
        if not isinstance(data, dict):
            raise LwlocalError(f"{source}: not a job's metadata (a JSON object)")
        version = data.get("schema", 0)
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise LwlocalError(f"{source}: schema {version} is from a newer lwlocal (this one "
                               f"reads up to {SCHEMA_VERSION})")
        sampling = data.get("sampling")
        if version < 2 and isinstance(sampling, dict):  # written without DRY: resumed so
            data = {**data, "sampling": {"dry_multiplier": 0.0, **sampling}}
        try:
            settings = JobSettings.from_dict(data)
        except TypeError as exc:
            raise LwlocalError(f"{source}: unreadable job settings ({exc})") from exc
        state, pid = data.get("state", "new"), data.get("pid")
        if version < 3 and state == "planned":
            state = "outlined"
        if state not in STATES or not (pid is None or isinstance(pid, int)):
            raise LwlocalError(f"{source}: state {str(state)[:40]!r} / pid {str(pid)[:40]!r} "
                               "not understood")
        created, model_path = data.get("created") or 0.0, data.get("model_path")
        if not (isinstance(created, (int, float)) and 0 <= created <= MAX_TIME):
            raise LwlocalError(f"{source}: created {str(created)[:40]} is not a time")
        if not (model_path is None or isinstance(model_path, str)):
            raise LwlocalError(f"{source}: model_path {str(model_path)[:40]!r} is not a path")
        result, reason = data.get("result"), data.get("reason")
        return cls(settings, float(created), state, pid, model_path,
                   result if isinstance(result, dict) else None,
                   str(reason)[:500] if reason is not None else None)
