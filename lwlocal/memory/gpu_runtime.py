"""GPU memory the runtime itself takes (CUDA context, cuBLAS workspace), measured on this machine.

``lwlocal hw --measure`` runs a child that puts a small model wholly on the GPU and evaluates one
batch; what nvidia-smi shows it using, less llama.cpp's buffers as the planner predicts them, is
the runtime's share. It is kept per GPU, driver and llama.cpp build; without it the planner uses
its stated default.

    python -m lwlocal.memory.gpu_runtime MODEL.gguf
is the child: it prints ``ready`` once the batch has run and holds its memory until stdin closes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from lwlocal.memory.allocations import predict
from lwlocal.memory.context_settings import Settings
from lwlocal.memory.model_shape import shape_from_gguf
from lwlocal.memory.nvidia_smi import gpu0_used, nvidia_smi
from lwlocal.util.atomic import atomic_write
from lwlocal.util.errors import LwlocalError
from lwlocal.util.paths import home

PROBE_TOKENS = 512  # context, batch and prompt of the probe


def runtime_file() -> Path:
    return home() / "gpu_runtime.json"


def _key(gpu: str) -> str:
    """What a measurement holds for: the GPU, its driver and the llama.cpp build."""
    from lwlocal.runtime.llama_build import llama_build

    build = llama_build()
    driver = (nvidia_smi("--query-gpu=driver_version") or [["?"]])[0][0]
    return f"{gpu} | driver {driver} | llama-cpp-python {build.version} | " + "+".join(
        build.backends)


def _load() -> dict[str, int]:
    try:
        data = json.loads(runtime_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, int) and v >= 0} if isinstance(
        data, dict) else {}


def measured_runtime(gpu: str) -> int | None:
    """The runtime bytes measured for ``gpu`` with this driver and build, or None."""
    return _load().get(_key(gpu))


def measure_gpu_runtime(model: Path, gpu: str) -> int:
    """Measure the runtime's bytes on GPU 0 with ``model`` (small: it must fit) and keep them."""
    before = gpu0_used()
    child = subprocess.Popen([sys.executable, "-m", "lwlocal.memory.gpu_runtime", str(model)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    assert child.stdin and child.stdout and child.stderr
    try:
        ready = child.stdout.readline().strip() == "ready"
        during = gpu0_used() if ready else 0
    finally:
        child.stdin.close()  # the child lets go of the GPU and exits
        errors = child.stderr.read()
        child.wait()
    if not ready or child.returncode != 0:
        last = errors.strip().splitlines()[-1:] or [f"exit status {child.returncode}"]
        raise LwlocalError(f"the GPU probe with {model} failed: {last[0]}")
    probe = Settings(PROBE_TOKENS, "f16", True, 10**6, PROBE_TOKENS, 1)
    buffers = predict(shape_from_gguf(model), probe, filled=PROBE_TOKENS).vram_bytes
    runtime = max(0, during - before - buffers)
    kept = _load() | {_key(gpu): runtime}
    runtime_file().parent.mkdir(parents=True, exist_ok=True)
    atomic_write(runtime_file(), json.dumps(kept, indent=1))
    return runtime


def _probe(model: Path) -> None:
    """The child: the whole model on the GPU, one full batch evaluated, then hold."""
    from lwlocal.runtime.engine import Engine, Sampling

    engine = Engine(model, n_ctx=PROBE_TOKENS, n_batch=PROBE_TOKENS, flash_attn=True,
                    n_gpu_layers=10**6)
    prompt = engine.tokenize("The lighthouse keeper wrote in the log. " * 64, start=True)
    engine.generate(prompt[:PROBE_TOKENS - 1], Sampling(), max_tokens=1)
    print("ready", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    _probe(Path(sys.argv[1]))
