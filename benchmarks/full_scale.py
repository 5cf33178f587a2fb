"""LongWriter-sized checkpoints through lwlocal and llama.cpp: time, peak RSS, sizes, tensors,
the planner's RAM against measured RSS, and decode speed against the memory-bandwidth limit.

    .venv/bin/python benchmarks/full_scale.py glm|llama [--layers N] [--work DIR]

One architecture a run (`glm`: LongWriter-glm4-9b's shapes, `llama`: LongWriter-llama3.1-8b's),
all layers unless `--layers N` (the full widths with fewer layers: a rehearsal). Steps, each
command in its own process (wall time, peak RSS of its largest process, output size):

1. a random bf16 checkpoint (benchmarks/synth_checkpoint.py);
2. `lwlocal convert --outtype f16`, `lwlocal quantize` f16 -> Q4_K_M, `lwlocal convert
   --outtype Q4_K_M` (one command, through a temporary bf16 GGUF);
3. llama.cpp's `convert_hf_to_gguf.py --outtype f16` (the llama.cpp that llama-cpp-python's
   source distribution vendors), its vocabulary step given lwlocal's vocabulary: the synthetic
   tokenizer's hash is not one llama.cpp knows, and GLM's tokenizer needs THUDM's remote code;
   then llama.cpp's quantizer, `llama_model_quantize` called directly through
   llama-cpp-python (the function llama-quantize runs; the tool is not built here);
   tensors compared byte for byte, f16 with f16 and Q4_K_M with Q4_K_M;
4. the planner's RAM for the Q4_K_M file (flash attention, batch 512) against the peak RSS
   of a child that loads it and evaluates context (lwlocal.memory.probe): n_ctx 4096 and 8192,
   f16 and q8_0 KV. A whole context is evaluated when the model has at most 8 layers (or with
   `--fill both`); above that (on 2 cores a 9B prefill of 8192 tokens takes tens of minutes)
   one batch of 512: the KV cache is allocated and cleared when the context is made, so it is
   resident either way, and the rehearsal at 4 layers measures both to show the difference;
5. decode tokens/s of lwlocal's engine and of raw llama-cpp-python (`Llama.generate`, greedy)
   on the Q4_K_M file, loaded in turn for three rounds (medians), against the bandwidth limit:
   the bytes of weights a token reads (all but the token embeddings) at the memory bandwidth
   of a streaming copy (numpy, one copy of 512 MiB per core, counted as bytes read + written,
   the best of 8 rounds).

Files are deleted once used (peak disk use of the work folder, sampled each second, is
printed); results go to benchmarks/results/full_scale_<arch>[_<layers>l].json.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.convert_vs_llamacpp import vendored_llama_cpp  # noqa: E402
from lwlocal.memory.allocations import MiB, predict  # noqa: E402
from lwlocal.memory.context_settings import Settings  # noqa: E402
from lwlocal.memory.hardware import detect  # noqa: E402
from lwlocal.memory.model_shape import shape_from_gguf  # noqa: E402
from lwlocal.memory.probe import measure_peak_rss  # noqa: E402
from lwlocal.models.catalogue import CARDS  # noqa: E402
from lwlocal.models.gguf_file import read_gguf  # noqa: E402
from lwlocal.util.cpu import physical_cores  # noqa: E402
from tests.support.peak import run_measured  # noqa: E402

ARCHS = {"glm": "longwriter-glm4-9b", "llama": "longwriter-llama3.1-8b"}
GiB = 2**30
POINTS = [(n_ctx, kv) for n_ctx in (4096, 8192) for kv in ("f16", "q8_0")]
FULL_FILL_LAYERS = 8  # models up to this many layers get their whole context evaluated
DECODE_CTX, DECODE_PROMPT = 4096, 64

REFERENCE_CONVERT = """
import sys
sys.path.insert(0, sys.argv[1])
import convert_hf_to_gguf as ref
from conversion.chatglm import ChatGLMModel
from conversion.llama import LlamaModel
from lwlocal.convert.tokenizer import add_vocabulary, load_vocabulary
from lwlocal.families import architecture_for

def set_vocab(self):
    arch = architecture_for(self.hparams, self.dir_model / "config.json")
    size = arch.shape(self.hparams, lambda _: None).vocab_size
    add_vocabulary(self.gguf_writer, load_vocabulary(self.dir_model, size, arch))

ChatGLMModel.set_vocab = LlamaModel.set_vocab = set_vocab
sys.argv = ["convert_hf_to_gguf.py", *sys.argv[2:]]
ref.main()
"""
REFERENCE_QUANTIZE = """
import ctypes, sys
import llama_cpp
params = llama_cpp.llama_model_quantize_default_params()
params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M
params.nthread = int(sys.argv[3])
sys.exit(llama_cpp.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(),
                                        ctypes.byref(params)))
"""


class DiskPeak:
    """The bytes the files under a folder take on disk, sampled each second; keeps the peak."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.peak = folder, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def used(self) -> int:
        total = 0
        for root, _, files in os.walk(self.folder):
            for name in files:
                with contextlib.suppress(FileNotFoundError):  # deleted meanwhile
                    total += os.stat(os.path.join(root, name)).st_blocks * 512
        return total

    def _sample(self) -> None:
        while not self._stop.wait(1.0):
            self.peak = max(self.peak, self.used())

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return max(self.peak, self.used())


def timed(label: str, args: list[str], out: Path | None) -> dict[str, Any]:
    """Run one command; print and return its time, peak RSS and output size."""
    run = run_measured(args)
    if run.status != 0:
        sys.exit(f"{label} failed ({run.status}):\n{run.stderr[-3000:]}")
    size = out.stat().st_size if out is not None and out.exists() else 0
    print(f"{label:<44} {run.seconds:8.1f} s {run.peak_rss / MiB:9.0f} MiB "
          f"{size / GiB:8.2f} GiB", flush=True)
    return {"seconds": round(run.seconds, 1), "peak_rss_mib": round(run.peak_rss / MiB),
            "output_bytes": size}


def lwlocal(*args: str) -> list[str]:
    return [sys.executable, "-m", "lwlocal", *args]


def tensor_digests(path: Path) -> dict[str, tuple[str, str]]:
    """Each tensor's type and a hash of its bytes, read a block at a time."""
    digests = {}
    with path.open("rb") as handle:
        for t in read_gguf(path).tensors:
            handle.seek(t.offset)
            digest, left = hashlib.blake2b(digest_size=16), t.n_bytes
            while left:
                block = handle.read(min(left, 64 * MiB))
                digest.update(block)
                left -= len(block)
            digests[t.name] = (t.tensor_type.name, digest.hexdigest())
    return digests


def compare(ours: dict[str, tuple[str, str]], theirs: dict[str, tuple[str, str]]
            ) -> dict[str, Any]:
    """Tensors of the same name and type with the same bytes, and those that differ."""
    same_type = [n for n in ours if n in theirs and ours[n][0] == theirs[n][0]]
    differ = [n for n in same_type if ours[n][1] != theirs[n][1]]
    return {"tensors": len(ours), "reference_tensors": len(theirs),
            "compared": len(same_type), "identical": len(same_type) - len(differ),
            "differ": differ, "only_ours": sorted(set(ours) - set(theirs)),
            "only_reference": sorted(set(theirs) - set(ours)),
            "type_differs": sorted(n for n in ours if n in theirs and ours[n][0] != theirs[n][0])}


def bandwidth(rounds: int = 8) -> float:
    """Memory bandwidth in bytes/s: one numpy copy of 512 MiB per core at once, counted as bytes
    read + written; the best of ``rounds`` after one untimed round (the pages faulted in)."""
    threads = physical_cores()
    pairs = [(np.ones(512 * MiB, np.uint8), np.ones(512 * MiB, np.uint8)) for _ in range(threads)]
    best = 0.0
    for round_ in range(rounds + 1):
        workers = [threading.Thread(target=np.copyto, args=(dst, src)) for src, dst in pairs]
        start = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        if round_:
            best = max(best, 2 * 512 * MiB * threads / (time.perf_counter() - start))
    return best


def memory_points(model: Path, fills: list[str]) -> list[dict[str, Any]]:
    """Predicted vs measured peak RSS at each point and fill."""
    shape, rows, repack = shape_from_gguf(model), [], detect().cpu_repack
    for n_ctx, kv in POINTS:
        s = Settings(n_ctx, kv, flash_attn=True, threads=physical_cores())
        predicted = predict(shape, s, cpu_repack=repack).ram_bytes
        for fill in fills:
            tokens = n_ctx if fill == "full" else s.n_batch
            start = time.monotonic()
            measured = measure_peak_rss(model, s, fill=tokens)
            error = (predicted - measured) / measured
            print(f"  n_ctx {n_ctx:5} KV {kv:4} filled {tokens:5}: predicted "
                  f"{predicted / MiB:7.0f} MiB, measured {measured / MiB:7.0f} MiB "
                  f"({error:+.1%}, {time.monotonic() - start:.0f} s)", flush=True)
            rows.append({"n_ctx": n_ctx, "kv": kv, "filled": tokens,
                         "predicted_mib": round(predicted / MiB, 1),
                         "measured_mib": round(measured / MiB, 1), "error": round(error, 4)})
    return rows


def decode(model: Path, tokens: int, rounds: int = 3) -> dict[str, Any]:
    """Greedy decode tokens/s of lwlocal's engine and of raw llama-cpp-python, same settings,
    loaded in turn for ``rounds`` rounds (other work on the machine comes and goes); medians."""
    import statistics

    import llama_cpp

    from lwlocal.runtime.engine import Engine, Sampling
    from lwlocal.util.samples import ENGLISH

    ours, raw = [], []
    for _ in range(rounds):
        engine = Engine(model, n_ctx=DECODE_CTX, flash_attn=True)
        prompt = engine.tokenize(ENGLISH)[:DECODE_PROMPT]
        engine.generate(prompt, Sampling(temperature=0), max_tokens=tokens, may_end=lambda: False)
        ours.append(engine.stats.decode_tokens_per_s)
        del engine
        llm = llama_cpp.Llama(model_path=str(model), n_ctx=DECODE_CTX, n_batch=512,
                              n_ubatch=512, n_threads=physical_cores(), flash_attn=True,
                              verbose=False)
        first = 0.0
        # as the engine counts: from the first token (the prompt evaluated) to the last
        for made, _ in enumerate(llm.generate(prompt, temp=0.0, reset=True), 1):
            if made == 1:
                first = time.perf_counter()
            if made == tokens:
                break
        raw.append(tokens / (time.perf_counter() - first))
        del llm
    mine, theirs = statistics.median(ours), statistics.median(raw)
    return {"tokens": tokens, "lwlocal_tok_s": round(mine, 3), "raw_tok_s": round(theirs, 3),
            "ratio": round(mine / theirs, 3), "lwlocal_rounds": [round(x, 3) for x in ours],
            "raw_rounds": [round(x, 3) for x in raw]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("arch", choices=ARCHS)
    parser.add_argument("--layers", type=int, help="blocks (default: all)")
    parser.add_argument("--work", type=Path, default=Path("full-scale-work"))
    parser.add_argument("--llama-cpp", type=Path, help="a llama.cpp checkout (default: the "
                        "one llama-cpp-python's source distribution vendors, downloaded)")
    parser.add_argument("--decode-tokens", type=int, default=32)
    parser.add_argument("--fill", choices=("batch", "both"), help="context evaluated for the "
                        "memory points: one batch, or also all of it (default: both up to "
                        f"{FULL_FILL_LAYERS} layers)")
    args = parser.parse_args()
    card = CARDS[ARCHS[args.arch]]
    layers = args.layers or card.n_layers
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    llama_cpp_dir = args.llama_cpp or vendored_llama_cpp(work.parent / "llama-cpp-src")
    disk = DiskPeak(work)
    result: dict[str, Any] = {"card": card.name, "layers": layers, "cores": physical_cores(),
                              "commands": {}}
    steps = result["commands"]
    src, f16, q4 = work / "hf", work / "lwlocal-f16.gguf", work / "lwlocal-q4_k_m.gguf"
    direct, ref16, refq4 = work / "direct-q4_k_m.gguf", work / "ref-f16.gguf", work / "ref-q4.gguf"
    print(f"{card.name}, {layers} layers, {physical_cores()} cores; work folder {work}")

    steps["synthesize"] = timed("synth_checkpoint.py (random bf16)", [
        sys.executable, str(ROOT / "benchmarks" / "synth_checkpoint.py"), card.name, str(src),
        "--layers", str(layers)], None)
    steps["synthesize"]["output_bytes"] = sum(p.stat().st_size for p in src.iterdir())
    steps["lwlocal_convert_f16"] = timed("lwlocal convert --outtype f16", lwlocal(
        "convert", str(src), "-o", str(f16), "--outtype", "f16"), f16)
    steps["lwlocal_quantize"] = timed("lwlocal quantize f16 -> Q4_K_M", lwlocal(
        "quantize", str(f16), "-o", str(q4), "--type", "Q4_K_M"), q4)
    ours_f16 = tensor_digests(f16)
    f16.unlink()
    steps["lwlocal_convert_q4_k_m"] = timed("lwlocal convert --outtype Q4_K_M", lwlocal(
        "convert", str(src), "-o", str(direct), "--outtype", "Q4_K_M"), direct)
    ours_q4 = tensor_digests(q4)
    result["direct_equals_via_f16"] = tensor_digests(direct) == ours_q4
    direct.unlink()

    steps["llama_cpp_convert_f16"] = timed("llama.cpp convert_hf_to_gguf.py --outtype f16", [
        sys.executable, "-c", REFERENCE_CONVERT, str(llama_cpp_dir), str(src), "--outtype", "f16",
        "--outfile", str(ref16)], ref16)
    shutil.rmtree(src)
    steps["llama_cpp_quantize"] = timed("llama.cpp llama_model_quantize -> Q4_K_M", [
        sys.executable, "-c", REFERENCE_QUANTIZE, str(ref16), str(refq4),
        str(physical_cores())], refq4)
    result["f16_vs_llama_cpp"] = compare(ours_f16, tensor_digests(ref16))
    ref16.unlink()
    result["q4_k_m_vs_llama_cpp"] = compare(ours_q4, tensor_digests(refq4))
    refq4.unlink()
    for key in ("f16_vs_llama_cpp", "q4_k_m_vs_llama_cpp"):
        c = result[key]
        print(f"{key}: {c['identical']}/{c['compared']} tensors of the same type identical "
              f"({c['tensors']} ours, {c['reference_tensors']} llama.cpp's)", flush=True)
    ours_total = (steps["lwlocal_convert_q4_k_m"]["seconds"])
    theirs_total = (steps["llama_cpp_convert_f16"]["seconds"]
                    + steps["llama_cpp_quantize"]["seconds"])
    result["q4_k_m_time_ratio"] = round(ours_total / theirs_total, 3)
    print(f"bf16 -> Q4_K_M: lwlocal {ours_total:.0f} s in one command, llama.cpp "
          f"{theirs_total:.0f} s in two (ratio {ours_total / theirs_total:.2f})")

    both = args.fill == "both" or (args.fill is None and layers <= FULL_FILL_LAYERS)
    fills = ["full", "batch"] if both else ["batch"]
    print("planner RAM vs measured peak RSS (flash attention, batch 512):", flush=True)
    result["memory"] = memory_points(q4, fills)

    result["bandwidth_gb_s"] = round(bandwidth() / 1e9, 2)
    shape = shape_from_gguf(q4)
    per_token = shape.weight_bytes - shape.input_bytes
    limit = result["bandwidth_gb_s"] * 1e9 / per_token
    result["decode"] = decode(q4, args.decode_tokens)
    result["decode"] |= {"weights_read_per_token_bytes": per_token,
                         "bandwidth_limit_tok_s": round(limit, 3),
                         "fraction_of_limit": round(result["decode"]["lwlocal_tok_s"] / limit, 3)}
    d = result["decode"]
    print(f"decode: lwlocal {d['lwlocal_tok_s']:.2f} tok/s, raw llama-cpp-python "
          f"{d['raw_tok_s']:.2f} ({d['ratio']:.2f}x); bandwidth {result['bandwidth_gb_s']} GB/s "
          f"over {per_token / GiB:.2f} GiB a token: limit {limit:.2f} tok/s "
          f"({d['fraction_of_limit']:.0%} reached)")
    q4.unlink()
    result["peak_disk_gib"] = round(disk.stop() / GiB, 2)
    print(f"peak disk use {result['peak_disk_gib']} GiB")
    suffix = "" if layers == card.n_layers else f"_{layers}l"
    out = ROOT / "benchmarks" / "results" / f"full_scale_{args.arch}{suffix}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(out)


if __name__ == "__main__":
    main()
