"""The planner's VRAM prediction against a real NVIDIA GPU.

    python benchmarks/gpu_memory.py recorded
        the H200 measurements kept in tests/test_planner_gpu.py beside today's predictions
    python benchmarks/gpu_memory.py check-shapes
        the Q4_K_M tensor sizes those tests rebuild from the cards, against one-block files made
        by synth_checkpoint.py and `lwlocal convert` (about a minute)
    python benchmarks/gpu_memory.py models DIR
        zero-weight Q4_K_M models of the Llama-3.1-8B (DIR/L.gguf) and GLM-4-9B (DIR/G.gguf)
        shapes, made with synth_checkpoint.py and `lwlocal convert --outtype Q4_K_M`
    python benchmarks/gpu_memory.py headers DIR OUT  /  expand OUT
        only the GGUF headers (a few MiB) to carry to a GPU machine, and there the files again
        at full size (their zero bodies are holes)
    python benchmarks/gpu_memory.py build LLAMA_CPP_SRC BUILD_DIR
        builds a CUDA libllama from llama.cpp's source (the one llama-cpp-python 0.3.36
        vendors); point LLAMA_CPP_LIB_PATH at BUILD_DIR/bin for the next step
    python benchmarks/gpu_memory.py run --model L=L.gguf --model G=G.gguf [--quick]
        on a machine with an NVIDIA GPU: runs each setting of the grid in a child process,
        samples the GPU's used memory every 20 ms, and prints predicted vs measured

Zero weights are enough: memory does not depend on the values. Measured = the child's peak GPU
memory (used memory less what was used before it started), after filling the context with full
offload or after one batch with partial offload; predicted = the planner's ``vram_bytes`` for
exactly those settings, with the GPU runtime measured on this machine (`lwlocal hw --measure`)
when it was, else the planner's default.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lwlocal.memory.allocations import GPU_RUNTIME_DEFAULT, MiB, predict  # noqa: E402
from lwlocal.memory.context_settings import Settings  # noqa: E402
from lwlocal.memory.hardware import detect  # noqa: E402
from lwlocal.memory.model_shape import shape_from_gguf  # noqa: E402
from lwlocal.memory.nvidia_smi import gpu0_used  # noqa: E402

# (model, n_ctx, kv type, flash attention, n_gpu_layers (None: all), n_batch)
GRID = [
    ("L", 8192, "f16", True, None, 512),
    ("L", 32768, "f16", True, None, 512),
    ("L", 32768, "q8_0", True, None, 512),
    ("L", 32768, "q4_0", True, None, 512),
    ("L", 32768, "f16", True, None, 2048),
    ("G", 32768, "f16", True, None, 512),
    ("G", 8192, "q8_0", True, None, 512),
    ("L", 8192, "f16", False, None, 512),
    ("L", 32768, "f16", False, None, 512),
    ("L", 32768, "f16", False, None, 2048),
    ("G", 32768, "f16", False, None, 512),
    ("L", 32768, "f16", True, 16, 512),
    ("L", 8192, "q8_0", True, 16, 512),
    ("L", 8192, "f16", False, 16, 512),
    ("G", 32768, "f16", True, 20, 512),
]
QUICK = [0, 7, 11]  # one row of each kind: full offload with and without flash attention, partial
HEADER = ("| model | ctx | KV | FA | ngl | n_batch | predicted MiB | measured MiB | error |\n"
          "|---|---|---|---|---|---|---|---|---|")


def row(name: str, s: Settings, predicted: float, measured: float) -> str:
    return (f"| {name} | {s.n_ctx} | {s.kv_type} | {'on' if s.flash_attn else 'off'} | "
            f"{s.n_gpu_layers} | {s.n_batch} | {predicted:.0f} | {measured:.0f} | "
            f"{predicted / measured - 1:+.1%} |")


def recorded() -> None:
    from tests.test_planner_gpu import MEASURED, L

    print(HEADER)
    for shape, n_ctx, kv, fa, ngl, n_batch, depth, measured in MEASURED:
        s = Settings(n_ctx, kv, fa, ngl, n_batch, 8)
        predicted = predict(shape, s, GPU_RUNTIME_DEFAULT, filled=depth).vram_bytes / MiB
        print(row("L" if shape is L else "G", s, predicted, measured))


def check_shapes(work: Path) -> None:
    from dataclasses import replace

    from benchmarks.synth_checkpoint import synthesize
    from lwlocal.models.catalogue import CARDS
    from lwlocal.quant.quantize import convert_and_quantize
    from tests.test_planner_gpu import q4_k_m_shape

    for name in FILES.values():
        card = replace(CARDS[name], n_layers=1)
        path = work / f"{name}-1.gguf"
        convert_and_quantize(synthesize(card, work / name, zeros=True), path, "Q4_K_M")
        real, rebuilt = shape_from_gguf(path), q4_k_m_shape(card)
        same = ((real.layer_bytes, real.input_bytes, real.output_bytes)
                == (rebuilt.layer_bytes, rebuilt.input_bytes, rebuilt.output_bytes))
        print(f"{name}: block, embeddings and output sizes {'match' if same else 'DIFFER'}")


FILES = {"L": "longwriter-llama3.1-8b", "G": "longwriter-glm4-9b"}


def models(out: Path) -> None:
    """Zero-weight Q4_K_M models of both shapes, through a sparse bf16 checkpoint."""
    import shutil

    from benchmarks.synth_checkpoint import synthesize
    from lwlocal.models.catalogue import CARDS
    from lwlocal.quant.quantize import convert_and_quantize

    out.mkdir(parents=True, exist_ok=True)
    for short, name in FILES.items():
        checkpoint = synthesize(CARDS[name], out / f"{short}-hf", zeros=True)
        convert_and_quantize(checkpoint, out / f"{short}.gguf", "Q4_K_M")
        shutil.rmtree(checkpoint)
        print(out / f"{short}.gguf")


def headers(models_dir: Path, out: Path) -> None:
    """Each GGUF's header and tensor table (up to its data), and its full size beside it."""
    import gguf

    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(models_dir.glob("*.gguf")):
        offset = gguf.GGUFReader(path).data_offset
        with path.open("rb") as src:
            (out / path.name).write_bytes(src.read(offset))
        (out / f"{path.name}.size").write_text(str(path.stat().st_size))


def expand(folder: Path) -> None:
    """Headers back to full-size files whose tensor data reads as zeros."""
    for size_file in sorted(folder.glob("*.gguf.size")):
        with (folder / size_file.name[: -len(".size")]).open("r+b") as handle:
            handle.truncate(int(size_file.read_text()))


def build(source: Path, out: Path) -> None:
    """A shared CUDA libllama for this machine's GPU: the library alone, no tools or tests."""
    if not (shutil.which("cmake") and shutil.which("ninja")):
        sys.exit("build needs cmake and ninja on PATH (pip install cmake ninja)")
    subprocess.run(["cmake", "-S", str(source), "-B", str(out), "-G", "Ninja",
                    "-DCMAKE_BUILD_TYPE=Release", "-DGGML_CUDA=ON",
                    "-DCMAKE_CUDA_ARCHITECTURES=native", "-DBUILD_SHARED_LIBS=ON",
                    "-DLLAMA_BUILD_TOOLS=OFF", "-DLLAMA_BUILD_TESTS=OFF",
                    "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=OFF", "-DLLAMA_CURL=OFF"],
                   check=True)
    subprocess.run(["cmake", "--build", str(out), "--target", "llama", "-j",
                    str(os.cpu_count() or 2)], check=True)
    print(f"LLAMA_CPP_LIB_PATH={out / 'bin'}")


class PeakSampler:
    """GPU 0's used memory, sampled every 20 ms by nvidia-smi until stopped; keeps the peak."""

    def __init__(self) -> None:
        self.peak = 0
        self._proc = subprocess.Popen(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0",
             "-lms", "20"], stdout=subprocess.PIPE, text=True)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            if line.strip().isdigit():
                self.peak = max(self.peak, int(line) * MiB)

    def stop(self) -> int:
        self._proc.terminate()
        self._proc.wait()
        self._thread.join()
        return self.peak


def child(model: Path, s: Settings) -> None:
    """Load with ``s``, fill the context (full offload) or run one batch (partial), exit."""
    from lwlocal.runtime.engine import Engine, Sampling

    engine = Engine(model, n_ctx=s.n_ctx, n_batch=s.n_batch, flash_attn=s.flash_attn,
                    kv_type=s.kv_type, n_gpu_layers=s.n_gpu_layers)
    fill = min(filled(s, shape_from_gguf(model).n_layers), s.n_ctx - 2)
    text = "The keeper climbed the stairs and trimmed the wick before the storm. "
    tokens = engine.tokenize(text * (fill // 8 + 1), start=True)[:fill]
    engine.generate(tokens, Sampling(temperature=0), max_tokens=1)


def filled(s: Settings, n_layers: int) -> int:
    return s.n_ctx if s.gpu_blocks >= n_layers else s.n_batch


def run(models: dict[str, Path], quick: bool) -> None:
    machine = detect()
    if not machine.offload:
        sys.exit("this llama.cpp cannot offload: build one (`build`) and set LLAMA_CPP_LIB_PATH")
    runtime = machine.gpu_runtime if machine.gpu_runtime is not None else GPU_RUNTIME_DEFAULT
    print(f"{machine.gpu}, GPU runtime {runtime / MiB:.0f} MiB "
          f"({'measured here' if machine.gpu_runtime is not None else 'default'})")
    print(HEADER)
    rows = [GRID[i] for i in QUICK] if quick else GRID
    for name, n_ctx, kv, fa, ngl, n_batch in rows:
        shape = shape_from_gguf(models[name])
        s = Settings(n_ctx, kv, fa, shape.n_layers + 1 if ngl is None else ngl, n_batch, 1)
        before = gpu0_used()
        sampler = PeakSampler()
        subprocess.run([sys.executable, __file__, "child", str(models[name]), str(n_ctx), kv,
                        str(int(fa)), str(s.n_gpu_layers), str(n_batch)], check=True)
        measured = (sampler.stop() - before) / MiB
        predicted = predict(shape, s, runtime, filled=filled(s, shape.n_layers)).vram_bytes / MiB
        print(row(name, s, predicted, measured), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("recorded")
    sub.add_parser("check-shapes").add_argument("work", type=Path, nargs="?",
                                                default=Path("/tmp/lwlocal-check-shapes"))
    sub.add_parser("models").add_argument("out", type=Path)
    h = sub.add_parser("headers")
    h.add_argument("models", type=Path)
    h.add_argument("out", type=Path)
    sub.add_parser("expand").add_argument("folder", type=Path)
    b = sub.add_parser("build")
    b.add_argument("source", type=Path)
    b.add_argument("out", type=Path)
    r = sub.add_parser("run")
    r.add_argument("--model", action="append", required=True, help="L=PATH or G=PATH")
    r.add_argument("--quick", action="store_true", help="three rows instead of the grid")
    c = sub.add_parser("child")
    for name in ("model", "n_ctx", "kv", "fa", "ngl", "n_batch"):
        c.add_argument(name)
    args = parser.parse_args()
    if args.command == "recorded":
        recorded()
    elif args.command == "check-shapes":
        check_shapes(args.work)
    elif args.command == "models":
        models(args.out)
    elif args.command == "headers":
        headers(args.models, args.out)
    elif args.command == "expand":
        expand(args.folder)
    elif args.command == "build":
        build(args.source, args.out)
    elif args.command == "run":
        run(dict((m.split("=", 1)[0], Path(m.split("=", 1)[1])) for m in args.model), args.quick)
    else:
        child(Path(args.model), Settings(int(args.n_ctx), args.kv, args.fa == "1",
                                         int(args.ngl), int(args.n_batch), 1))


if __name__ == "__main__":
    main()
