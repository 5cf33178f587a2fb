"""How many threads to run native code on."""

from __future__ import annotations

import os

import psutil


def physical_cores() -> int:
    """Physical CPU cores (llama.cpp runs best with one thread per core)."""
    return psutil.cpu_count(logical=False) or os.cpu_count() or 1
