"""What this machine has to run a model with: RAM (within any cgroup limit), VRAM, cores, and
whether its llama.cpp build can put layers on a GPU."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from lwlocal.memory.nvidia_smi import nvidia_gpus
from lwlocal.util.cpu import physical_cores

CGROUP_ROOT = Path("/sys/fs/cgroup")
# Metal lets a process wire about this share of unified memory for the GPU by default.
APPLE_GPU_SHARE = 0.75


@dataclass(frozen=True)
class Machine:
    """Memory in bytes; ``vram_*`` are 0 without a GPU. ``unified``: the GPU shares RAM.

    ``gpus``: GPUs found (lwlocal runs on the first one alone); ``offload``: whether the
    installed llama.cpp can offload layers at all (its backends: ``llama_build``);
    ``gpu_runtime``: bytes the GPU runtime itself takes, measured on this machine (None: not
    measured, the planner uses its default)."""

    ram_total: int
    ram_available: int
    vram_total: int
    vram_free: int
    gpu: str | None
    unified: bool
    cores: int
    threads: int
    gpus: int = 0
    offload: bool = False
    gpu_runtime: int | None = None
    cpu_repack: bool = False  # llama.cpp's CPU backend holds repacked copies of some weights

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


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


def detect() -> Machine:
    """This machine's memory, cores and llama.cpp build."""
    from lwlocal.memory.gpu_runtime import measured_runtime
    from lwlocal.runtime.llama_build import llama_build

    memory = psutil.virtual_memory()
    total, available = memory.total, memory.available
    limit, used = cgroup_memory()
    if limit is not None:
        total = min(total, limit)
        available = min(available, max(0, limit - (used or 0)))
    build = llama_build()
    cpu: dict[str, Any] = {"cores": physical_cores(), "threads": os.cpu_count() or 1,
           "offload": build.offload, "cpu_repack": build.cpu_repack}
    gpus = nvidia_gpus()
    if gpus:  # the engine runs on the first GPU alone (llama.cpp's split mode "none")
        name, vram_total, vram_free = gpus[0]
        return Machine(total, available, vram_total, vram_free, name, False, gpus=len(gpus),
                       gpu_runtime=measured_runtime(name), **cpu)
    if platform.system() == "Darwin" and platform.machine() == "arm64":
        gpu_share = int(total * APPLE_GPU_SHARE)
        return Machine(total, available, gpu_share, min(gpu_share, available), "Apple GPU",
                       True, gpus=1, **cpu)
    return Machine(total, available, 0, 0, None, False, **cpu)
