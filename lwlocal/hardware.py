"""What this machine has to run a model with: RAM (within any cgroup limit), VRAM, cores."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

CGROUP_ROOT = Path("/sys/fs/cgroup")
# Metal lets a process wire about this share of unified memory for the GPU by default.
APPLE_GPU_SHARE = 0.75


@dataclass(frozen=True)
class Machine:
    """Memory in bytes; ``vram_*`` are 0 without a GPU. ``unified``: the GPU shares RAM."""

    ram_total: int
    ram_available: int
    vram_total: int
    vram_free: int
    gpu: str | None
    unified: bool
    cores: int
    threads: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def physical_cores() -> int:
    """Physical CPU cores (llama.cpp runs best with one thread per core)."""
    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def cgroup_memory(root: Path = CGROUP_ROOT) -> tuple[int | None, int | None]:
    """The cgroup's memory limit and current use in bytes (v2, else v1); None where unset."""
    limit = _read_int(root / "memory.max")  # "max" (no limit) reads as None
    if limit is not None:
        return limit, _read_int(root / "memory.current")
    limit = _read_int(root / "memory" / "memory.limit_in_bytes")
    if limit is not None and limit >= 2**60:  # v1 writes a huge number for "no limit"
        limit = None
    return limit, _read_int(root / "memory" / "memory.usage_in_bytes")


def nvidia_gpus() -> list[tuple[str, int, int]]:
    """(name, total bytes, free bytes) of each NVIDIA GPU that nvidia-smi reports."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,memory.free",
             "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        name, total, free = (part.strip() for part in line.rsplit(",", 2))
        gpus.append((name, int(total) * 2**20, int(free) * 2**20))
    return gpus


def detect() -> Machine:
    """This machine's memory and cores."""
    memory = psutil.virtual_memory()
    total, available = memory.total, memory.available
    limit, used = cgroup_memory()
    if limit is not None:
        total = min(total, limit)
        available = min(available, max(0, limit - (used or 0)))
    gpus = nvidia_gpus()
    if gpus:  # llama.cpp splits layers over all GPUs; plan with their sum
        names = ", ".join(sorted({g[0] for g in gpus}))
        return Machine(total, available, sum(g[1] for g in gpus), sum(g[2] for g in gpus),
                       names, False, physical_cores(), os.cpu_count() or 1)
    if platform.system() == "Darwin" and platform.machine() == "arm64":
        gpu_share = int(total * APPLE_GPU_SHARE)
        return Machine(total, available, gpu_share, min(gpu_share, available), "Apple GPU",
                       True, physical_cores(), os.cpu_count() or 1)
    return Machine(total, available, 0, 0, None, False, physical_cores(), os.cpu_count() or 1)
