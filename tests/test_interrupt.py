"""Ctrl-C and SIGTERM stop the work wherever they arrive, in one line: also when the signal
lands in Python code that llama.cpp calls back (its log while a model loads, the evaluation
callback of ``imatrix``), where Python would print "Exception ignored" and go on."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import llama_cpp
import llama_cpp._logger
import pytest

from lwlocal.util.interrupt import Interrupted, exit_status, handle_sigterm, held
from lwlocal.util.paths import jobs_dir
from lwlocal.write.jobs import resume_session
from lwlocal.write.journal import Job
from lwlocal.write.settings import JobSettings
from tests.support.bounds import HANG
from tests.support.cli import interruptible

LIBC = ctypes.CDLL(None)
COMPARE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
PROMPT = "Write a guide to the history of lighthouses and the people who kept them."


@pytest.fixture
def ignored(monkeypatch: pytest.MonkeyPatch) -> list[BaseException]:
    """The exceptions Python prints as "Exception ignored" (in a ctypes callback) and drops."""
    seen: list[BaseException] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda info: seen.append(info.exc_value))
    return seen


@pytest.fixture
def ctrl_c_raises() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt here, even in a test run started with it ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def sort_with_a_signal_inside(signum: int) -> None:
    """libc's qsort, whose comparison (Python, called from C) gets ``signum`` the first time."""
    calls = []

    def compare(_a: int, _b: int) -> int:
        calls.append(1)
        if len(calls) == 1:
            signal.raise_signal(signum)
        return 0

    callback = COMPARE(compare)
    LIBC.qsort((ctypes.c_int * 32)(), 32, ctypes.sizeof(ctypes.c_int), callback)


def test_a_signal_inside_a_c_callback_is_raised_once_the_call_returns(ctrl_c_raises, ignored):
    sort_with_a_signal_inside(signal.SIGINT)  # what Python does alone: the interrupt is lost
    assert [type(exc) for exc in ignored] == [KeyboardInterrupt]
    ignored.clear()
    with pytest.raises(KeyboardInterrupt), held() as came:
        sort_with_a_signal_inside(signal.SIGINT)
        assert came()
    previous = signal.getsignal(signal.SIGTERM)
    handle_sigterm()
    try:
        with pytest.raises(Interrupted) as info, held():
            sort_with_a_signal_inside(signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert exit_status(info.value) == 143 and exit_status(KeyboardInterrupt()) == 130
    assert ignored == []


def test_ctrl_c_while_resume_loads_the_model_stops_it(ctrl_c_raises, ignored, default_model,
                                                      lw_home):
    job = Job.create(jobs_dir(), JobSettings(PROMPT, 200, model=str(default_model)))
    sent = []

    @llama_cpp.llama_log_callback
    def log(_level: int, _text: bytes, _user_data: ctypes.c_void_p) -> None:
        if not sent:  # Ctrl-C while llama.cpp logs from inside the load
            sent.append(1)
            signal.raise_signal(signal.SIGINT)

    llama_cpp.llama_log_set(log, ctypes.c_void_p(0))
    try:
        with pytest.raises(KeyboardInterrupt):
            resume_session(job)
    finally:
        llama_cpp.llama_log_set(llama_cpp._logger.llama_log_callback, ctypes.c_void_p(0))
    assert sent and ignored == []


def spawn(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lwlocal", *args],
                            env={**os.environ, "LWLOCAL_HOME": str(home), **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=interruptible)


class StderrWatch:
    """The child's stderr, read in the background as it comes."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self._pieces: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._reader.start()

    def _read(self, proc: subprocess.Popen) -> None:
        assert proc.stderr is not None
        while piece := proc.stderr.read(1):
            with self._changed:
                self._pieces.append(piece)
                self._changed.notify_all()
        with self._changed:
            self._pieces.append("")  # the end
            self._changed.notify_all()

    def wait_for(self, text: str, timeout: float = 300) -> None:
        """Until ``text`` shows (or the child closes its stderr)."""
        with self._changed:
            shown = self._changed.wait_for(
                lambda: text in "".join(self._pieces) or self._pieces[-1:] == [""], timeout)
        assert shown, f"no {text!r} on stderr: {self.text()[-500:]}"

    def text(self) -> str:
        """All of it, once the child has exited."""
        self._reader.join(timeout=HANG)
        return "".join(self._pieces)


def test_ctrl_c_stops_imatrix_between_tensors(default_model, lw_home, tmp_path):
    out = tmp_path / "im.gguf"
    proc = spawn(lw_home, "imatrix", str(default_model), "-o", str(out), "--ctx", "128",
                 "--chunks", "200", "--threads", "1",
                 env={"TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1"})  # progress on stderr
    stderr = StderrWatch(proc)
    try:
        stderr.wait_for("chunk 1/")
        assert proc.poll() is None, "imatrix finished before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=HANG) == 130
    finally:
        proc.kill()
        proc.wait()
    assert stderr.text().rstrip().endswith("\nlwlocal: interrupted")
    assert [p for p in tmp_path.iterdir() if p != lw_home] == []  # its log aside


def test_sigterm_leaves_the_job_resumable_in_one_line(default_model, lw_home):
    proc = spawn(lw_home, "write", PROMPT, "--words", "240", "--sections", "3", "--ctx", "4096")
    jobs = lw_home / "jobs"
    try:
        while proc.poll() is None and not list(jobs.glob("*/sections/001.md")):
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=HANG)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 143, stderr
    (job_dir,) = jobs.iterdir()
    job = Job.open(str(job_dir), jobs)
    assert stderr.strip().splitlines()[-1] == (f"interrupted: job {job.id} is kept; go on with "
                                               f"`lwlocal resume {job.id}`")
    assert job.meta.state == "interrupted" and 1 <= len(job.finished()) < 3


def test_a_log_that_cannot_be_written_is_one_warning_not_a_ctypes_traceback(
        ignored, default_model, lw_home, monkeypatch):
    """An exception inside llama.cpp's log callback (here the log's disk is full) must not
    reach llama.cpp, through which Python prints it as "Exception ignored" with a traceback:
    the lines are dropped, with one warning for the process."""
    from lwlocal.runtime import llama_log
    from lwlocal.runtime.engine import count_tokens
    from lwlocal.util.errors import LwlocalWarning

    def full(text: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(llama_log, "_write", full)
    monkeypatch.setattr(llama_log, "_failed", False, raising=False)
    with pytest.warns(LwlocalWarning, match="llama.log: llama.cpp's log cannot be written") as said:
        assert count_tokens(default_model, "A cup of tea.") > 0
        assert count_tokens(default_model, "Another cup.") > 0
    assert ignored == [] and len(said) == 1
