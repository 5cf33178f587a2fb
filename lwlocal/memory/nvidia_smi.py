"""What nvidia-smi reports of this machine's NVIDIA GPUs: names, memory total, free and used."""

from __future__ import annotations

import shutil
import subprocess

from lwlocal.util.errors import LwlocalError


def nvidia_smi(*query: str) -> list[list[str]]:
    """Rows of an ``nvidia-smi --query-…`` CSV (no header, no units); [] without nvidia-smi."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", *query, "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, errors="replace", timeout=10,
                             check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [[part.strip() for part in line.split(",")] for line in out.strip().splitlines()]


def _mib(text: str) -> int | None:
    """A MiB figure from nvidia-smi as bytes; None for "[N/A]" and the like."""
    return int(text) * 2**20 if text.isdigit() else None


def nvidia_gpus() -> list[tuple[str, int, int]]:
    """(name, total bytes, free bytes) of each NVIDIA GPU that nvidia-smi reports in full."""
    gpus = []
    for row in nvidia_smi("--query-gpu=name,memory.total,memory.free"):
        if len(row) < 3:
            continue
        name, total, free = ",".join(row[:-2]), _mib(row[-2]), _mib(row[-1])
        if total is not None and free is not None:
            gpus.append((name, total, free))
    return gpus


def gpu0_used() -> int:
    """Bytes in use on the first GPU, as nvidia-smi reports them."""
    rows = nvidia_smi("--query-gpu=memory.used")
    if not rows or not rows[0][0].isdigit():
        raise LwlocalError("nvidia-smi does not report the GPU's used memory; the GPU runtime "
                           "can be measured on an NVIDIA GPU only")
    return int(rows[0][0]) * 2**20
