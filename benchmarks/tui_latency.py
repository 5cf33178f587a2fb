"""How quickly `lwlocal tui` answers, as a user at a terminal sees it: the app runs in a
pseudo-terminal of 80x24 and every time is from writing bytes to the terminal to the first
output that shows their effect.

- launch: from starting `python -m lwlocal tui` to a letter, typed at once, drawn in the
  prompt (the prompt is focused and reads keys);
- while a job is being written on the default model (the app started with the prompt and
  --words filled in, then ctrl+g and ctrl+w): a letter typed in the prompt, and a screen
  switch (F6 Library, F3 Compose), each from the key to the change on screen; the first
  switch to the Library (its screen made then) apart.

    .venv/bin/python benchmarks/tui_latency.py [--words 1000] [--repeat 10]

Writes benchmarks/results/tui_latency.json.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import pty
import statistics
import struct
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
F3, F5, F6 = "\x1bOR", "\x1b[15~", "\x1b[17~"
CTRL_G, CTRL_W = "\x07", "\x17"
LIMIT = 900.0  # seconds before a wait counts as failed
APP = ("from lwlocal.tui.app import LwlocalApp; from lwlocal.tui.state import TuiState; "
       "LwlocalApp(TuiState(prompt='Write a travel guide to Lisbon for a first-time visitor.', "
       "words={words})).run()")  # the app with the form filled in


class Terminal:
    """The app in an 80x24 pseudo-terminal, its output collected as it comes."""

    def __init__(self, home: Path, argv: list[str]) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # no echo: a key shows only when the app draws it
            attrs = termios.tcgetattr(0)
            attrs[3] &= ~(termios.ECHO | termios.ICANON)
            termios.tcsetattr(0, termios.TCSANOW, attrs)
            env = {**os.environ, "LWLOCAL_HOME": str(home), "TERM": "xterm-256color",
                   "COLUMNS": "80", "LINES": "24"}
            os.execvpe(sys.executable, [sys.executable, *argv], env)
        self.started = time.perf_counter()
        self.pid, self.fd = pid, fd
        while termios.tcgetattr(fd)[3] & termios.ECHO:  # a key sent before would be echoed,
            time.sleep(0.001)  # and read as drawn at once
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        self.output = bytearray()
        self.lock = threading.Lock()
        self.grew = threading.Condition(self.lock)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 65536)
            except OSError:
                return
            if not data:
                return
            with self.grew:
                self.output += data
                self.grew.notify_all()

    def send(self, keys: str) -> tuple[float, int]:
        """Type ``keys``; when, and how much output there was before."""
        with self.lock:
            mark = len(self.output)
        sent = time.perf_counter()
        os.write(self.fd, keys.encode())
        return sent, mark

    def wait_for(self, text: str, since: int = 0) -> float:
        """When ``text`` first shows in the output after ``since``."""
        needle = text.encode()
        deadline = time.monotonic() + LIMIT
        with self.grew:
            while needle not in self.output[since:]:
                if not self.grew.wait(timeout=deadline - time.monotonic()):
                    dump = Path(tempfile.gettempdir()) / "tui_latency.out"
                    dump.write_bytes(bytes(self.output))
                    raise TimeoutError(f"{text!r} never showed (the output: {dump})")
            return time.perf_counter()

    def key_to_screen(self, keys: str, shows: str) -> float:
        sent, mark = self.send(keys)
        return self.wait_for(shows, mark) - sent

    def close(self) -> None:
        """ctrl+q, again until the app has gone (one sent while it starts can be lost)."""
        while not os.waitpid(self.pid, os.WNOHANG)[0]:
            with contextlib.suppress(OSError):  # the app has closed the terminal
                os.write(self.fd, b"\x11")
            time.sleep(0.5)


def summary(times: list[float]) -> dict[str, float]:
    ms = sorted(t * 1000 for t in times)
    return {"median_ms": round(statistics.median(ms), 1), "max_ms": round(ms[-1], 1),
            "n": len(ms)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        term = Terminal(Path(home), ["-m", "lwlocal", "tui"])
        term.send("Z")  # typed at once: drawn when the prompt has the focus
        launch = term.wait_for("Z") - term.started
        term.close()
        term = Terminal(Path(home), ["-c", APP.format(words=args.words)])
        term.wait_for("What should be written?")
        typing, switching = [], []
        sent, mark = term.send(CTRL_G)
        term.wait_for("target words", mark)  # the outline
        sent, mark = term.send(CTRL_W)
        term.wait_for("tok/s", mark)  # writing, past the prompt
        for _ in range(args.repeat):
            switching.append(term.key_to_screen(F6, "newest first"))
            switching.append(term.key_to_screen(F3, "What should be written?"))
            typing.append(term.key_to_screen("Z", "Z"))
            term.send("\x7f")
        sent, mark = term.send(F5)
        term.wait_for("document", mark)
        writing_still = b"writing" in term.output[mark:]
        term.close()
    result = {"launch_to_focused_prompt_s": round(launch, 2),
              "while_writing": {"typing": summary(typing),
                                "first_visit_ms": round(switching[0] * 1000, 1),
                                "screen_switch": summary(switching[1:])},
              "was_writing_throughout": writing_still, "cores": os.cpu_count()}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tui_latency.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
