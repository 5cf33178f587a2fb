"""Run a command and measure its wall time and peak RSS, for tests and benchmarks."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# A small Python process starts the command with posix_spawn and waits for it with wait4: a
# process forked or spawned from a large one (pytest, a benchmark holding arrays) inherits its
# parent's high-water RSS at exec, so ru_maxrss must come from a small parent. RUSAGE_CHILDREN
# then gives the largest process of the command's tree.
SPAWN = """
import os, resource, sys
pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)
_, status, _ = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024))
sys.exit(os.waitstatus_to_exitcode(status))
"""


@dataclass(frozen=True)
class Measured:
    status: int
    stdout: str
    stderr: str
    peak_rss: int  # bytes: the largest process of the command's tree
    seconds: float


def run_measured(args: list[str], preexec: Callable[[], None] | None = None,
                 env: dict[str, str] | None = None) -> Measured:
    """Run ``args`` to the end; ``preexec`` runs in the measuring process before it starts the
    command (resource limits, signals: inherited by the command)."""
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "peak"
        start = time.monotonic()
        proc = subprocess.run([sys.executable, "-S", "-c", SPAWN, str(report), *args],
                              capture_output=True, text=True, preexec_fn=preexec,
                              env=env if env is not None else os.environ.copy())
        seconds = time.monotonic() - start
        peak = int(report.read_text()) if report.is_file() else 0
    return Measured(proc.returncode, proc.stdout, proc.stderr, peak, seconds)
