"""Starting ``lwlocal serve`` in a child process, for tests and benchmarks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from lwlocal.util.errors import LwlocalError
from tests.support.bounds import HANG


def spawn(port: int, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``lwlocal serve --port PORT ARGS`` in a child process (for scripts and tests), returned
    once it answers on ``/health``; however long loading takes, an error if it exits first."""
    proc = subprocess.Popen([sys.executable, "-m", "lwlocal", "serve", "--port", str(port), *args],
                            env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    if healthy(proc, port):
        return proc
    proc.kill()
    raise LwlocalError(f"lwlocal serve exited: {proc.stderr.read() if proc.stderr else ''}")


def healthy(proc: subprocess.Popen, port: int) -> bool:
    """Wait until the server ``proc`` on ``port`` answers 200 on ``/health`` (True), or it
    exits or ``HANG`` passes (False)."""
    deadline = time.monotonic() + HANG
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    return False


CTX = "2048"  # the test servers' context: room for short jobs, quick to load


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(port: int, home: Path) -> subprocess.Popen:
    """The default model served on ``port`` as the tests use it, with its own home."""
    return spawn(port, "--ctx", CTX, "--words", "1500", env={"LWLOCAL_HOME": str(home)})


def stop(proc: subprocess.Popen) -> None:
    """Ctrl-C, as a user stops it; killed if it has not ended 30 s later."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
