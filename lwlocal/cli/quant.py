"""Model file commands: convert, quantize, imatrix, quantize-gptq, eval-quant."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from gguf import Keys

from lwlocal.cli.progress import TaskProgress
from lwlocal.cli.render import err, print_quantized
from lwlocal.convert.run import OUTTYPES
from lwlocal.convert.run import convert as convert_checkpoint
from lwlocal.models.gguf_file import check_gguf, gguf_metadata
from lwlocal.models.hub import CHECKPOINT_FILES, looks_like_repo_id, pull
from lwlocal.quant.calibration import HELDOUT, read_text
from lwlocal.quant.collect import collect
from lwlocal.quant.evaluator import check_chunking
from lwlocal.quant.gptq import GptqRequest, quantize_gptq
from lwlocal.quant.gptq import check_request as check_gptq
from lwlocal.quant.imatrix_file import save
from lwlocal.quant.quality import evaluate
from lwlocal.quant.quantize import check_request, convert_and_quantize, quantize
from lwlocal.runtime.kv_cache import KV_CACHE_TYPES
from lwlocal.util.cpu import check_threads
from lwlocal.util.destination import check_destination, check_folder
from lwlocal.util.errors import LwlocalError
from lwlocal.util.overwrite import refuse_input_as_output


@click.command()
@click.argument("src")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="The GGUF file to write.")
@click.option("--outtype",
              help=f"{', '.join(OUTTYPES)} (written directly), or a quant type such as Q4_K_M "
                   "(through a temporary f16 GGUF). Default: f16 for f16/f32 sources, bf16 for "
                   "bf16 sources.")
@click.option("--imatrix", type=click.Path(path_type=Path),
              help="Importance matrix for a quant type (from `lwlocal imatrix`).")
@click.option("--threads", type=int, help="Quantizer threads (default: physical cores).")
@click.option("--allow-nonfinite", is_flag=True,
              help="Convert weights that hold NaN or infinite values as they are (refused "
                   "otherwise).")
def convert(src: str, output: Path, outtype: str | None, imatrix: Path | None,
            threads: int | None, allow_nonfinite: bool) -> None:
    """Convert a Hugging Face checkpoint (a local folder or a hub id, pulled first) to a GGUF
    file (no torch needed), optionally quantized."""
    check_destination(output)
    check_threads(threads)
    quant_type = None if outtype is None or outtype.lower() in OUTTYPES else outtype
    direct = quant_type is None
    if direct and imatrix is not None:
        raise LwlocalError("--imatrix needs a quant type as --outtype (e.g. Q4_K_M)")
    if quant_type is not None:
        check_request(quant_type, imatrix, Path(src))
    try:
        folder = pull(src, CHECKPOINT_FILES) if looks_like_repo_id(src) else Path(src)
        with TaskProgress(err) as progress:
            if quant_type is None:
                result = convert_checkpoint(folder, output, outtype and outtype.lower(),
                                            progress, allow_nonfinite)
            else:
                result, quantized = convert_and_quantize(
                    folder, output, quant_type, imatrix=imatrix, n_threads=threads,
                    progress=progress, allow_nonfinite=allow_nonfinite)
    except KeyboardInterrupt:
        err.print(f"[yellow]interrupted[/]: {output} was not written", soft_wrap=True)
        sys.exit(130)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if not direct:
        print_quantized(quantized)
        return
    how = "as asked" if outtype else f"the default for {result.source_dtype} weights"
    click.echo(f"{result.path}: {result.architecture}, {result.outtype} ({how}), "
               f"{result.tensors} tensors, {result.bytes / 2**20:.1f} MiB of tensor data", err=True)


@click.command("quantize")
@click.argument("src", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="The quantized GGUF to write.")
@click.option("--type", "qtype", required=True,
              help="llama-quantize's type name: Q8_0, Q6_K, Q5_K_M, Q4_K_M, Q3_K_M, Q2_K, "
                   "IQ4_XS, IQ3_M, IQ2_XS, ... (an unknown name lists them all).")
@click.option("--imatrix", type=click.Path(path_type=Path),
              help="Importance matrix (GGUF or legacy .dat); IQ1/IQ2 types need one.")
@click.option("--threads", type=int, help="Quantizer threads (default: physical cores).")
def quantize_command(src: Path, output: Path, qtype: str, imatrix: Path | None,
                     threads: int | None) -> None:
    """Quantize a GGUF file with llama.cpp's own quantizer."""
    check_destination(output)
    with TaskProgress(err) as progress:
        result = quantize(src, output, qtype, imatrix=imatrix, n_threads=threads,
                          progress=progress)
    print_quantized(result)


@click.command("imatrix")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--text", "text_file", type=click.Path(path_type=Path),
              help="Calibration text (default: the long-form essays and chapters shipped with "
                   "lwlocal).")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="The importance matrix to write (llama-imatrix's GGUF format).")
@click.option("--ctx", type=int, default=512, show_default=True, help="Tokens per chunk.")
@click.option("--chunks", type=int, help="Evaluate only the first N chunks.")
@click.option("--threads", type=int, help="CPU threads (default: physical cores).")
def imatrix_command(model: Path, text_file: Path | None, output: Path, ctx: int,
                    chunks: int | None, threads: int | None) -> None:
    """Compute an importance matrix for quantizing MODEL, from its activations on a text."""
    check_chunking(ctx, chunks, threads)
    check_destination(output)
    check_gguf(model)
    refuse_input_as_output(output, {"input model": model, "calibration text": text_file})
    text, label = read_text(text_file, "longform")
    with TaskProgress(err) as progress:
        matrix = collect(model, text, n_ctx=ctx, chunks=chunks, dataset=label,
                         n_threads=threads, progress=progress)
    save(matrix, output, str(gguf_metadata(model).get(Keys.General.ARCHITECTURE, "")))
    click.echo(f"{output}: {len(matrix.sums)} weight matrices, {matrix.chunk_count} chunks of "
               f"{ctx} tokens from {label}", err=True)


@click.command("quantize-gptq")
@click.argument("src")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="The GPTQ checkpoint folder to write.")
@click.option("--bits", type=int, default=GptqRequest.bits, show_default=True,
              help="2, 3, 4 or 8.")
@click.option("--group-size", type=int, default=GptqRequest.group_size, show_default=True,
              help="Columns per quantization group (-1: one group per row).")
@click.option("--desc-act", is_flag=True, help="Quantize columns in order of activation size.")
@click.option("--sym/--asym", default=True, show_default=True,
              help="Symmetric groups (what vLLM's Marlin kernels need) or with zero points.")
@click.option("--text", "text_file", type=click.Path(path_type=Path),
              help="Calibration text (default: the long-form text shipped with lwlocal, as "
                   "for the GGUF importance matrix).")
@click.option("--samples", type=int, default=GptqRequest.samples, show_default=True,
              help="Calibration chunks.")
@click.option("--seq-len", type=int, default=GptqRequest.seq_len, show_default=True,
              help="Tokens per calibration chunk.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def quantize_gptq_command(src: str, output: Path, bits: int, group_size: int, desc_act: bool,
                          sym: bool, text_file: Path | None, samples: int, seq_len: int,
                          as_json: bool) -> None:
    """Quantize the HF checkpoint SRC (a folder or hub id) to a GPTQ checkpoint for GPUs
    (transformers, vLLM, ExLlama); on the CPU here, on a GPU when torch sees one."""
    folder = pull(src, CHECKPOINT_FILES) if looks_like_repo_id(src) else Path(src)
    request = GptqRequest(folder, output, bits, group_size, desc_act, sym, samples, seq_len)
    check_gptq(request)
    check_folder(output)
    text, label = read_text(text_file, "longform")
    with TaskProgress(err) as progress:
        result = quantize_gptq(request, text, label, progress)
    if as_json:
        click.echo(json.dumps(result.as_dict()))
        return
    click.echo(f"{result.out}: GPTQ {result.bits}-bit, group size {result.group_size}, "
               f"{'symmetric' if result.sym else 'with zero points'}, "
               f"{result.size_bytes / 2**20:.1f} MiB, calibrated on {result.samples} chunks of "
               f"{result.seq_len} tokens from {label}, {result.seconds:.1f} s on {result.device}",
               err=True)


@click.command("eval-quant")
@click.argument("base", type=click.Path(path_type=Path))
@click.argument("quant", type=click.Path(path_type=Path))
@click.option("--text", "text_file", type=click.Path(path_type=Path),
              help="Evaluation text (default: the held-out long-form text shipped with lwlocal).")
@click.option("--ctx", type=int, default=512, show_default=True, help="Tokens per chunk.")
@click.option("--chunks", type=int, help="Evaluate only the first N chunks.")
@click.option("--threads", type=int, help="CPU threads (default: physical cores).")
@click.option("--kv-type", type=click.Choice(KV_CACHE_TYPES), default="f16", show_default=True,
              help="KV cache type QUANT is evaluated with (BASE's: f16). QUANT the same file "
                   "as BASE measures what the KV cache type alone costs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def eval_quant(base: Path, quant: Path, text_file: Path | None, ctx: int, chunks: int | None,
               threads: int | None, kv_type: str, as_json: bool) -> None:
    """Quality of QUANT against BASE: perplexity of both, KL divergence, top-1 agreement.
    GGUF files, or HF checkpoint folders (a GPTQ quant against its source)."""
    check_chunking(ctx, chunks, threads)
    text, label = read_text(text_file, HELDOUT)
    with TaskProgress(err) as progress:
        report = evaluate(base, quant, text, n_ctx=ctx, chunks=chunks, label=label,
                          n_threads=threads, progress=progress, kv_type=kv_type)
    if as_json:
        click.echo(json.dumps(report.as_dict()))
        return
    click.echo(f"{report.chunks} chunks of {report.ctx} tokens from {label}, "
               f"{report.tokens} tokens scored"
               + (f", QUANT with a {kv_type} KV cache" if kv_type != "f16" else ""))
    click.echo(f"PPL base    {report.ppl_base:.4f}")
    click.echo(f"PPL quant   {report.ppl_quant:.4f}  (ratio {report.ppl_ratio:.4f})")
    click.echo(f"KLD         mean {report.kld_mean:.6f}  median {report.kld_median:.6f}  "
               f"99% {report.kld_p99:.6f}  max {report.kld_max:.6f}")
    click.echo(f"Top-1 agreement {100 * report.top1_agreement:.2f}%")
