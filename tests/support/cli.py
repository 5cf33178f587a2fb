"""Running the ``lwlocal`` command as a user does, in a child process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


def run_cli(*args: str, env_home: Path, check: bool = False, timeout: float | None = None,
            env: dict[str, str] | None = None):
    """Run ``python -m lwlocal ARGS`` with its own home (and ``env`` added); returns the
    completed process."""
    env = {**os.environ, "LWLOCAL_HOME": str(env_home), **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "lwlocal", *args], env=env, text=True,
                          capture_output=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"lwlocal {args} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def interruptible() -> None:
    """``preexec_fn`` for a child the test will Ctrl-C: SIGINT as a terminal delivers it, even
    when the test run itself was started with SIGINT ignored (a background job of a shell
    without job control passes that on to every child)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
