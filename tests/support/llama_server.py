"""llama.cpp's own ``llama-server``: built once from the llama.cpp that the installed
llama-cpp-python vendors (the engine's own commit), and started for tests and benchmarks.

The Makefile builds it (``make llama-server``, part of ``make test``) into the user cache, in a
folder named by the llama-cpp-python version and the build flags, so a machine pays for the
build once:

    .venv/bin/python -m tests.support.llama_server BINARY

builds to the path BINARY (the build flags come from ``$CMAKE_ARGS``, as for the wheel).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from filelock import FileLock

from lwlocal.util.cpu import default_threads
from lwlocal.util.errors import LwlocalError
from tests.support.server import free_port, healthy

ROOT = Path(__file__).resolve().parents[2]
# Only the server: no tests, examples, web UI download (no network), HTTPS or shared libraries
# (the binary is copied out of its build folder on its own).
SERVER_ONLY = ["-DCMAKE_BUILD_TYPE=Release", "-DBUILD_SHARED_LIBS=OFF", "-DLLAMA_BUILD_SERVER=ON",
               "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_OPENSSL=OFF",
               "-DLLAMA_BUILD_UI=OFF", "-DLLAMA_USE_PREBUILT_UI=OFF"]
# For the default model: llama.cpp's built-in chatml, which lays a conversation out as lwlocal
# does; the GGUF's own Jinja template adds SmolLM2's default system prompt to a conversation
# without one, so the prompts (and the text) would differ from the first token.
CHATML = ("--chat-template", "chatml")


def build(binary: Path) -> Path:
    """Build ``llama-server`` to ``binary`` unless it is there (one build at a time)."""
    binary.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(binary) + ".lock"):
        if binary.is_file():
            return binary
        with tempfile.TemporaryDirectory(dir=binary.parent, prefix="build-") as work:
            source = _vendored_source(Path(work))
            build_dir = Path(work) / "build"
            flags = shlex.split(os.environ.get("CMAKE_ARGS", ""))
            subprocess.run(["cmake", "-S", str(source), "-B", str(build_dir), *SERVER_ONLY,
                            *flags], check=True)
            jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL") or str(os.cpu_count() or 2)
            subprocess.run(["cmake", "--build", str(build_dir), "--target", "llama-server",
                            "-j", jobs], check=True)
            partial = binary.with_suffix(".partial")
            shutil.copy2(build_dir / "bin" / "llama-server", partial)
            partial.replace(binary)
    return binary


def _vendored_source(work: Path) -> Path:
    """vendor/llama.cpp from llama-cpp-python's source distribution (from the package index)."""
    wanted = version("llama-cpp-python")
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "--no-binary", ":all:", "-d", str(work), f"llama-cpp-python=={wanted}"],
                   check=True)
    prefix = f"llama_cpp_python-{wanted}/vendor/llama.cpp/"
    with tarfile.open(next(work.glob(f"llama_cpp_python-{wanted}.tar.gz"))) as archive:
        archive.extractall(work, members=[m for m in archive.getmembers()
                                          if m.name.startswith(prefix)], filter="data")
    return work / prefix


def binary() -> Path:
    """The built server: ``$LWLOCAL_LLAMA_SERVER`` (set by ``make test``), else built now by
    ``make llama-server``."""
    given = os.environ.get("LWLOCAL_LLAMA_SERVER")
    if given:
        return Path(given)
    made = subprocess.run(["make", "--no-print-directory", "-s", "llama-server"], cwd=ROOT,
                          check=True, capture_output=True, text=True)
    return Path(made.stdout.split()[-1])


@dataclass
class LlamaServer:
    """A running ``llama-server``: its process, port and log."""

    proc: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start(model: Path, log: Path, *args: str, port: int | None = None) -> LlamaServer:
    """``llama-server -m MODEL ARGS`` on 127.0.0.1, returned once ``/health`` says it is
    ready; an error with the log's tail if it exits first."""
    port = port or free_port()
    with log.open("ab") as out:
        proc = subprocess.Popen([str(binary()), "-m", str(model), "--host", "127.0.0.1",
                                 "--port", str(port), "--no-webui",
                                 "--threads", str(default_threads()), *args],
                                stdout=out, stderr=subprocess.STDOUT)
    server = LlamaServer(proc, port, log)
    if healthy(proc, port):
        return server
    server.stop()
    tail = log.read_text(errors="replace")[-2000:]
    raise LwlocalError(f"llama-server did not start on port {port}: {tail}")


@contextmanager
def running(model: Path, log: Path, *args: str) -> Iterator[LlamaServer]:
    server = start(model, log, *args)
    try:
        yield server
    finally:
        server.stop()


if __name__ == "__main__":
    print(build(Path(sys.argv[1])))
