"""Starting ``lwlocal serve`` in a child process, for tests and benchmarks."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx

from lwlocal.util.errors import LwlocalError


def spawn(port: int, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``lwlocal serve --port PORT ARGS`` in a child process (for scripts and tests), returned
    once it answers on ``/health``; however long loading takes, an error if it exits first."""
    proc = subprocess.Popen([sys.executable, "-m", "lwlocal", "serve", "--port", str(port), *args],
                            env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    while proc.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise LwlocalError(f"lwlocal serve exited: {proc.stderr.read() if proc.stderr else ''}")
