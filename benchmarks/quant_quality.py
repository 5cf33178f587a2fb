"""Quant quality of the default model: size, bits per weight, perplexity, KL divergence, top-1
agreement and decode speed for each quant type, without and with an importance matrix, and a
long-form against a short-text importance matrix; then lwlocal against llama.cpp's own tools on
the same inputs (llama-imatrix, llama-quantize, llama-perplexity).

The base is the default model's real weights turned back into an HF checkpoint and converted to
f16 by lwlocal. Calibration: the long-form texts shipped with lwlocal, and the short chat turns
for comparison (the same number of chunks each); evaluation: the held-out long-form text.
llama.cpp's tools are built from the llama.cpp that llama-cpp-python's source distribution
vendors (cmake and a C++ compiler needed) unless --llama-bin names a folder that has them.
GPTQ rows (the [gptq] extra): the HF checkpoint quantized by `lwlocal quantize-gptq`, measured
with transformers against that checkpoint (f32) on the same held-out chunks; `--gptq-only`
measures just those and puts them beside the GGUF rows of the last full run.
Needs the [bench] extra: `pip install -e '.[bench]'`.

    .venv/bin/python benchmarks/quant_quality.py [--work DIR] [--llama-bin DIR] [--gptq-only]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from lwlocal.convert.run import convert
from lwlocal.quant.calibration import HELDOUT, SHORT, longform_calibration, shipped
from lwlocal.quant.collect import collect
from lwlocal.quant.gptq import GptqRequest, quantize_gptq
from lwlocal.quant.imatrix_file import load, save
from lwlocal.quant.quality import BaseRun
from lwlocal.quant.quantize import quantize
from lwlocal.quant.types import NEEDS_IMATRIX
from lwlocal.runtime.engine import Engine, Sampling

sys.path.insert(0, str(Path(__file__).parent))
from convert_vs_llamacpp import smollm_checkpoint, vendored_llama_cpp

TYPES = ["Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q3_K_M", "IQ4_XS", "IQ3_M"]
# (bits, group size, symmetric): 32 and 64 divide the default model's width, 576
GPTQ = [(8, 64, True), (4, 64, True), (4, 64, False), (4, 32, False), (3, 64, False)]
SHORT_TOO = ["Q4_K_M", "IQ4_XS", "IQ3_M"]  # also quantized with the short-text imatrix
TOOLS = ["llama-imatrix", "llama-quantize", "llama-perplexity"]
CMAKE_FLAGS = ["-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=OFF", "-DGGML_AVX2=ON",
               "-DGGML_FMA=ON", "-DGGML_F16C=ON", "-DLLAMA_CURL=OFF", "-DBUILD_SHARED_LIBS=OFF"]


def llama_tools(work: Path, given: Path | None) -> Path:
    """A folder with llama-imatrix, llama-quantize and llama-perplexity."""
    if given:
        return given
    build = work / "llama-build"
    if not all((build / "bin" / tool).is_file() for tool in TOOLS):
        source = vendored_llama_cpp(work)
        subprocess.run(["cmake", "-S", str(source), "-B", str(build), *CMAKE_FLAGS], check=True)
        subprocess.run(["cmake", "--build", str(build), "--target", *TOOLS, "-j"], check=True)
    return build / "bin"


def decode_speed(path: Path) -> float:
    """Decode tokens/s of 128 sampled tokens after a short prompt."""
    engine = Engine(path, n_ctx=512)
    context = engine.tokenize("The history of lighthouses begins", start=True)
    engine.generate(context, Sampling(), max_tokens=128)
    return engine.stats.decode_tokens_per_s


def timed(command: list[str]) -> tuple[float, str]:
    start = time.monotonic()
    proc = subprocess.run(command, capture_output=True, text=True, check=True)
    return time.monotonic() - start, proc.stdout + proc.stderr


def against_llama_cpp(bin_dir: Path, work: Path, base: Path, imatrix: Path, text: Path,
                      chunks: int, ctx: int) -> dict[str, float]:
    """The same imatrix, quant and perplexity made by llama.cpp's tools."""
    ours_q4 = work / "Q4_K_M-longform.gguf"
    ref_imatrix, ref_q4 = work / "ref-imatrix.gguf", work / "ref-Q4_K_M.gguf"
    calibration = work / "longform.txt"
    calibration.write_text(longform_calibration())
    imatrix_s, _ = timed([str(bin_dir / "llama-imatrix"), "-m", str(base), "-f", str(calibration),
                          "-c", str(ctx), "--chunks", str(chunks), "-o", str(ref_imatrix),
                          "--no-ppl"])
    ours, ref = load(imatrix).means(), load(ref_imatrix).means()
    worst = max(float(np.max(np.abs(ours[k] - ref[k]) / np.abs(ref[k]))) for k in ref)
    quantize_s, _ = timed([str(bin_dir / "llama-quantize"), "--imatrix", str(imatrix), str(base),
                           str(ref_q4), "Q4_K_M"])
    start = time.monotonic()
    quantize(base, work / "again.gguf", "Q4_K_M", imatrix=imatrix)
    ours_quantize_s = time.monotonic() - start
    from gguf import GGUFReader

    a, b = GGUFReader(ours_q4).tensors, GGUFReader(ref_q4).tensors
    identical = sum(np.array_equal(x.data, y.data) for x, y in zip(a, b, strict=True))
    _, log = timed([str(bin_dir / "llama-perplexity"), "-m", str(base), "-f", str(text), "-c",
                    str(ctx)])
    ppl = float(re.search(r"Final estimate: PPL = ([\d.]+)", log).group(1))
    return {"imatrix_worst_relative_difference": worst, "llama_imatrix_s": imatrix_s,
            "q4_k_m_identical_tensors": identical, "tensors": len(a),
            "llama_quantize_s": quantize_s, "lwlocal_quantize_s": ours_quantize_s,
            "llama_perplexity_ppl_base": ppl}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/lwlocal-quant-bench"))
    parser.add_argument("--llama-bin", type=Path, help="Folder with llama.cpp's tools.")
    parser.add_argument("--ctx", type=int, default=512)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--gptq-only", action="store_true",
                        help="Measure the GPTQ rows only, keeping the last run's GGUF rows.")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.gptq_only:
        result = json.loads((args.out / "quant_quality.json").read_text())
        result["gptq"] = gptq_rows(args.work, args.ctx)
        save_results(result, args.out)
        return

    base = args.work / "smollm2-f16.gguf"
    if not base.is_file():
        convert(smollm_checkpoint(args.work), base, "f16")
    heldout = args.work / "heldout.txt"
    heldout.write_text(shipped(HELDOUT))
    short_text = shipped(SHORT)
    short = collect(base, short_text, n_ctx=args.ctx, dataset=f"lwlocal:{SHORT}")
    chunks = short.chunk_count
    imatrices = {"short": args.work / "imatrix-short.gguf",
                 "longform": args.work / "imatrix-longform.gguf"}
    save(short, imatrices["short"], "llama")
    save(collect(base, longform_calibration(), n_ctx=args.ctx, chunks=chunks,
                 dataset="lwlocal:longform"), imatrices["longform"], "llama")
    print(f"imatrices: {chunks} chunks of {args.ctx} tokens each", flush=True)

    rows = []
    with BaseRun(base, heldout.read_text(), n_ctx=args.ctx, label=str(heldout)) as run:
        for qtype in TYPES:
            for imatrix in ("none", "longform", "short"):
                if (imatrix == "none" and qtype in NEEDS_IMATRIX) or (
                        imatrix == "short" and qtype not in SHORT_TOO):
                    continue
                path = args.work / f"{qtype}-{imatrix}.gguf"
                made = quantize(base, path, qtype,
                                imatrix=None if imatrix == "none" else imatrices[imatrix])
                report = run.compare(path)
                rows.append({"type": qtype, "imatrix": imatrix, "mib": made.bytes / 2**20,
                             "bpw": made.bits_per_weight, "ppl": report.ppl_quant,
                             "kld_mean": report.kld_mean, "kld_p99": report.kld_p99,
                             "top1": report.top1_agreement, "decode_tps": decode_speed(path)})
                print(json.dumps(rows[-1]), flush=True)
        ppl_base = run.compare(base).ppl_base
    reference = against_llama_cpp(llama_tools(args.work, args.llama_bin), args.work, base,
                                  imatrices["longform"], heldout, chunks, args.ctx)
    reference["lwlocal_ppl_base"] = ppl_base
    result = {"base": str(base), "base_mib": base.stat().st_size / 2**20, "ppl_base": ppl_base,
              "eval_tokens": run.count, "imatrix_chunks": chunks, "rows": rows,
              "llama_cpp": reference}
    result["gptq"] = gptq_rows(args.work, args.ctx)
    save_results(result, args.out)


def gptq_rows(work: Path, ctx: int) -> list[dict]:
    """Each GPTQ setting of the default model's checkpoint against that checkpoint."""
    source = smollm_checkpoint(work)
    text = shipped(HELDOUT)
    rows = []
    with BaseRun(source, text, n_ctx=ctx, label=f"lwlocal:{HELDOUT}") as run:
        for bits, group, sym in GPTQ:
            name = f"GPTQ {bits}-bit g{group} {'sym' if sym else 'asym'}"
            out = work / name.replace(" ", "-")
            shutil.rmtree(out, ignore_errors=True)
            made = quantize_gptq(GptqRequest(source, out, bits, group, sym=sym),
                                 longform_calibration(), "lwlocal:longform")
            report = run.compare(out)
            rows.append({"type": name, "imatrix": "longform",
                         "mib": made.size_bytes / 2**20, "ppl": report.ppl_quant,
                         "ppl_base": report.ppl_base, "kld_mean": report.kld_mean,
                         "kld_p99": report.kld_p99, "top1": report.top1_agreement,
                         "seconds": made.seconds})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def save_results(result: dict, out: Path) -> None:
    (out / "quant_quality.json").write_text(json.dumps(result, indent=1))
    write_table(result, out / "quant_quality.md")
    plot(result["rows"], result.get("gptq", []), out / "quant_quality.png")
    print((out / "quant_quality.md").read_text())


def write_table(result: dict, path: Path) -> None:
    lines = [f"Base: f16, {result['base_mib']:.1f} MiB, PPL {result['ppl_base']:.3f} on "
             f"{result['eval_tokens']} held-out tokens.", "",
             "| type | imatrix | MiB | bits/weight | PPL | mean KLD | 99% KLD | top-1 | "
             "decode tok/s |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['type']} | {r['imatrix']} | {r['mib']:.1f} | {r['bpw']:.2f} | "
              f"{r['ppl']:.3f} | {r['kld_mean']:.4f} | {r['kld_p99']:.4f} | "
              f"{100 * r['top1']:.1f}% | {r['decode_tps']:.0f} |" for r in result["rows"]]
    gptq = result.get("gptq", [])
    if gptq:
        lines += ["", f"GPTQ (GPTQModel on the CPU, 32 chunks of 512 tokens of the long-form "
                      f"text), against the f32 checkpoint (PPL {gptq[0]['ppl_base']:.3f}) with "
                      "transformers on the same held-out chunks:", "",
                  "| type | MiB | PPL | mean KLD | 99% KLD | top-1 | quantize s |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['type']} | {r['mib']:.1f} | {r['ppl']:.3f} | {r['kld_mean']:.4f} | "
                  f"{r['kld_p99']:.4f} | {100 * r['top1']:.1f}% | {r['seconds']:.0f} |"
                  for r in gptq]
    path.write_text("\n".join(lines) + "\n")


def plot(rows: list[dict], gptq: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for imatrix, marker in (("none", "o"), ("longform", "s"), ("short", "^")):
        chosen = [r for r in rows if r["imatrix"] == imatrix]
        ax.scatter([r["mib"] for r in chosen], [r["kld_mean"] for r in chosen], marker=marker,
                   label=f"imatrix: {imatrix}")
        for r in chosen if imatrix != "short" else []:
            ax.annotate(r["type"], (r["mib"], r["kld_mean"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
    ax.scatter([r["mib"] for r in gptq], [r["kld_mean"] for r in gptq], marker="D",
               label="GPTQ (vs f32, transformers)")
    for r in gptq:
        ax.annotate(r["type"].removeprefix("GPTQ "), (r["mib"], r["kld_mean"]), fontsize=7,
                    xytext=(3, -9), textcoords="offset points")
    ax.set_xlabel("file size (MiB)")
    ax.set_ylabel("mean KL divergence from f16")
    ax.set_yscale("log")
    ax.set_title("SmolLM2-135M quants on held-out long-form text")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
