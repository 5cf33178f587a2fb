"""Where lwlocal keeps its files: jobs, downloaded or converted models, benchmark results."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The data folder: ``$LWLOCAL_HOME``, else ``$XDG_DATA_HOME/lwlocal`` (``~/.local/share``)."""
    if env := os.environ.get("LWLOCAL_HOME"):
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(xdg) / "lwlocal"


def jobs_dir() -> Path:
    """Folder holding one sub-folder per writing job."""
    return home() / "jobs"


def models_dir() -> Path:
    """Folder where GGUF files of the model cards are looked for."""
    return home() / "models"


def bench_dir() -> Path:
    """Default folder of ``lwlocal bench`` results."""
    return home() / "bench"
