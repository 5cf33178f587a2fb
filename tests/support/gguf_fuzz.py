"""Damaged copies of a GGUF and a runner that puts each through lwlocal commands in one process.

``python -m tests.support.gguf_fuzz MODEL FOLDER SEED COUNT`` writes the cases into FOLDER and
prints one JSON line per command run: the case, the command, the exit code and standard error;
a command that raises anything but ``SystemExit`` is reported as ``traceback``. The test reads
the lines; should llama.cpp abort, the process dies and the last case started is the culprit.
"""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.gguf_copies import HEADER_BYTES, header_of, sparse_copy

# `printf v | dd of=f.gguf bs=1 seek=12595 conv=notrunc`: a token of the default model's
# vocabulary becomes a copy of another, which llama.cpp's loader asserts on
DUPLICATE_TOKEN_AT = 12595
COMMANDS = (("inspect", "{file}"), ("plan", "{file}", "--words", "500"))


@dataclass(frozen=True)
class Case:
    name: str
    flips: tuple[tuple[int, int], ...] = ()  # (offset, new byte)
    size: int | None = None  # the file cut to this many bytes (else the model's size)


def cases(seed: int, count: int) -> Iterator[Case]:
    """The named cases, then ``count`` seeded ones: byte flips in the first 4 KiB and 64 KiB
    and cuts in the first 2 MiB, a third each."""
    yield Case("magic only", size=4)
    yield Case("duplicate token", flips=((DUPLICATE_TOKEN_AT, ord("v")),))
    yield Case("empty", size=0)
    rng = random.Random(seed)
    for index in range(count):
        kind = ("flip 4 KiB", "flip 64 KiB", "cut 2 MiB")[index % 3]
        if kind.startswith("cut"):
            yield Case(f"{index} {kind}", size=rng.randrange(HEADER_BYTES))
            continue
        limit = 4096 if "4 KiB" in kind else 65536
        flips = tuple((rng.randrange(limit), rng.randrange(256))
                      for _ in range(rng.randint(1, 4)))
        yield Case(f"{index} {kind}", flips=flips)


def write_case(case: Case, header: bytes, size: int, path: Path) -> Path:
    data = bytearray(header)
    for offset, value in case.flips:
        data[offset] = value
    return sparse_copy(bytes(data), size if case.size is None else case.size, path)


def run_here(args: list[str]) -> tuple[int | str, str]:
    """``lwlocal ARGS`` in this process: the exit code (or ``traceback``) and what reached
    file descriptor 2, as a user's terminal would show it (what lwlocal mutes stays muted)."""
    from lwlocal.cli import main

    sys.argv = ["lwlocal", *args]
    code: int | str = 0
    with tempfile.TemporaryFile("w+b") as sink, open(os.devnull, "wb") as null:
        saved = os.dup(1), os.dup(2)
        os.dup2(null.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except Exception:  # noqa: BLE001 - a traceback is what the test looks for
            code = "traceback"
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        sink.seek(0)
        return code, sink.read().decode(errors="replace")


def main(model: Path, folder: Path, seed: int, count: int) -> None:
    header, size = header_of(model), model.stat().st_size
    for index, case in enumerate(cases(seed, count)):
        path = write_case(case, header, size, folder / f"case{index}.gguf")
        for command in COMMANDS:
            args = [arg.format(file=path) for arg in command]
            print(json.dumps({"case": case.name, "file": str(path), "command": command[0]}),
                  flush=True)
            code, err = run_here(args)
            print(json.dumps({"code": code, "stderr": err}), flush=True)
        path.unlink()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
