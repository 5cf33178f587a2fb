"""Running the ``lwlocal`` command: in this process (:func:`invoke`, fast, and what a fake
backend installed by a fixture reaches) or in a child process as a user does (:func:`run_cli`,
for the end-to-end tests)."""

from __future__ import annotations

import ctypes
import io
import os
import signal
import subprocess
import sys
import tempfile
import warnings
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


class _Descriptor:
    """What is written to file descriptor ``fd`` while in the ``with`` block (by native code
    too: llama.cpp's logs, a library's C++ warnings), kept in ``data`` as a child process's
    would go to its pipe."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.data = b""

    def __enter__(self) -> _Descriptor:
        self._saved = os.dup(self.fd)
        self._file = tempfile.TemporaryFile()
        os.dup2(self._file.fileno(), self.fd)
        return self

    def __exit__(self, *exc: object) -> None:
        ctypes.CDLL(None).fflush(None)  # C stdio's buffers, as a process's exit flushes them
        os.dup2(self._saved, self.fd)
        os.close(self._saved)
        self._file.seek(0)
        self.data = self._file.read()
        self._file.close()


def invoke(*args: str, env_home: Path | None = None, check: bool = False,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``lwlocal ARGS`` in this process as if it were a process of its own: through the
    command's entry point (:func:`lwlocal.cli.main`: its error lines and exit codes), stdin
    empty, sys.stdout and sys.stderr writing to file descriptors 1 and 2 (so that muting native
    output mutes them too), whose output, native code's included, is captured; warnings shown
    afresh, and the SIGTERM handler the command installs taken away after it. Returns what
    :func:`run_cli` returns. ``env_home`` (else the test's own home from the ``lw_home``
    fixture) and ``env`` are set for the call only. An exception the command does not turn
    into an exit code propagates, as a traceback would end the process (a Ctrl-C as an
    AssertionError, so that it fails the test, not the test run)."""
    from lwlocal.cli import main

    overrides = {**({"LWLOCAL_HOME": str(env_home)} if env_home else {}), **(env or {})}
    saved_env = {name: os.environ.get(name) for name in overrides}
    saved = sys.stdin, sys.stdout, sys.stderr, sys.argv
    sigterm = signal.getsignal(signal.SIGTERM)
    code: int | str | None = 0
    with (_Descriptor(1) as out, _Descriptor(2) as err,
          warnings.catch_warnings()):  # a process of its own shows each warning again
        warnings.simplefilter("default")
        os.environ.update(overrides)
        sys.stdin = io.StringIO()
        sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace",  # noqa: SIM115
                          closefd=False, buffering=1)
        sys.argv = ["lwlocal", *args]
        try:
            main()
        except SystemExit as exc:
            code = exc.code
        except KeyboardInterrupt as exc:
            raise AssertionError(f"lwlocal {args}: Ctrl-C escaped the command") from exc
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            sys.stdin, sys.stdout, sys.stderr, sys.argv = saved
            signal.signal(signal.SIGTERM, sigterm)
            for name, value in saved_env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
    if isinstance(code, str):  # sys.exit("message"): printed, status 1
        err.data += f"{code}\n".encode()
    proc = subprocess.CompletedProcess(["lwlocal", *args],
                                       code if isinstance(code, int) else int(code is not None),
                                       out.data.decode(), err.data.decode())
    if check and proc.returncode != 0:
        raise AssertionError(f"lwlocal {args} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def interruptible() -> None:
    """``preexec_fn`` for a child the test will Ctrl-C: SIGINT as a terminal delivers it, even
    when the test run itself was started with SIGINT ignored (a background job of a shell
    without job control passes that on to every child)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
