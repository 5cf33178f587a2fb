"""GGUF quantization: llama.cpp's quantizer driven from Python, importance matrices checked
against the definition (transformers forward hooks on the same weights), quality figures
checked against transformers' perplexity, and the numbers a Q8_0 and a Q2_K quant get."""

from __future__ import annotations

import json
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import gguf
import numpy as np
import pytest

from lwlocal.quant.calibration import HELDOUT, longform_calibration, shipped
from lwlocal.quant.collect import collect
from lwlocal.quant.evaluator import Evaluator
from lwlocal.quant.imatrix_file import ImportanceMatrix, load, save
from lwlocal.quant.quality import BaseRun, evaluate
from lwlocal.quant.quantize import quantize
from lwlocal.quant.types import NEEDS_IMATRIX, QUANT_TYPES, quant_type
from lwlocal.util.errors import LwlocalError
from tests.support.bounds import HANG
from tests.support.cli import interruptible, run_cli

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

CTX = 256
HF_NAMES = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
            "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
            "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}


@pytest.fixture(scope="module")
def quants(smollm_f32, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("quants")
    return {t: quantize(smollm_f32, folder / f"{t}.gguf", t).path for t in ("Q8_0", "Q2_K")}


@pytest.fixture(scope="module")
def hf_model(smollm_hf):
    return transformers.AutoModelForCausalLM.from_pretrained(smollm_hf,
                                                             dtype=torch.float32).eval()


def chunks_of(model: Path, text: str, count: int) -> list[np.ndarray]:
    with Evaluator(model, n_ctx=CTX) as evaluator:
        return evaluator.chunks(text, count)


def test_quant_types_follow_llama_quantize():
    assert quant_type("q4_k_m") == ("Q4_K_M", 15)
    assert quant_type("Q4_K") == ("Q4_K_M", 15)  # llama-quantize's alias
    assert {"Q8_0", "Q6_K", "Q5_K_M", "Q3_K_M", "Q2_K", "IQ4_XS", "IQ3_M", "IQ2_XS",
            "IQ1_S"} <= set(QUANT_TYPES)
    with pytest.raises(LwlocalError, match="valid types: .*Q4_K_M"):
        quant_type("Q9_K")
    assert set(QUANT_TYPES) >= NEEDS_IMATRIX


def test_q8_0_is_near_the_base_and_q2_k_clearly_worse(smollm_f32, quants):
    with BaseRun(smollm_f32, shipped(HELDOUT), n_ctx=CTX, chunks=4) as base:  # as the benchmark
        q8, q2 = base.compare(quants["Q8_0"]), base.compare(quants["Q2_K"])  # compares quants
    assert q8.tokens == 4 * (CTX - 1 - CTX // 2)
    assert q8.kld_mean < 0.01 and q8.top1_agreement >= 0.95
    assert abs(q8.ppl_ratio - 1) < 0.02
    assert q2.kld_mean > 10 * q8.kld_mean and q2.top1_agreement < q8.top1_agreement - 0.1
    assert q2.ppl_quant > q8.ppl_quant and q2.kld_p99 > q2.kld_median > 0


def test_perplexity_matches_transformers(smollm_f32, hf_model):
    """The same chunks scored by transformers: PPL within 1%; the base against itself has
    KL divergence 0 (up to the 16-bit storage of its log-probabilities) and full agreement."""
    text = shipped(HELDOUT)
    report = evaluate(smollm_f32, smollm_f32, text, n_ctx=CTX, chunks=2)
    nll = []
    for chunk in chunks_of(smollm_f32, text, 2):
        with torch.no_grad():
            logits = hf_model(torch.tensor([chunk.tolist()])).logits[0].double()
        logp = torch.log_softmax(logits, dim=-1)
        first = CTX // 2
        nll += [-logp[i, chunk[i + 1]].item() for i in range(first, CTX - 1)]
    assert report.ppl_base == pytest.approx(float(np.exp(np.mean(nll))), rel=0.01)
    assert report.ppl_quant == pytest.approx(report.ppl_base, rel=1e-9)
    assert report.kld_mean < 1e-4 and report.top1_agreement == 1.0


def test_imatrix_is_the_mean_squared_input_of_every_block_matrix(smollm_f32, hf_model):
    text = longform_calibration()
    matrix = collect(smollm_f32, text, n_ctx=CTX, chunks=2, dataset="longform")
    weights = {t.name for t in gguf.GGUFReader(smollm_f32).tensors
               if len(t.shape) == 2 and t.name.startswith("blk.")}
    assert set(matrix.sums) == weights  # every quantizable matrix of the blocks
    assert matrix.chunk_count == 2 and all(c[0] == 2 * CTX for c in matrix.counts.values())

    sums: dict[str, torch.Tensor] = {}
    hooks = []
    for name, module in hf_model.model.layers.named_modules():
        if isinstance(module, torch.nn.Linear):
            block, _, rest = name.partition(".")
            gguf_name = f"blk.{block}.{HF_NAMES[rest]}.weight"

            def hook(_module, inputs, _output, key=gguf_name):
                x = inputs[0].double().reshape(-1, inputs[0].shape[-1])
                sums[key] = sums.get(key, 0) + (x * x).sum(0)

            hooks.append(module.register_forward_hook(hook))
    with torch.no_grad():
        for chunk in chunks_of(smollm_f32, text, 2):
            hf_model(torch.tensor([chunk.tolist()]))
    for h in hooks:
        h.remove()
    means = matrix.means()
    for name in weights:
        expected = (sums[name] / (2 * CTX)).numpy()
        relative = np.abs(means[name] - expected) / expected
        assert np.median(relative) < 1e-3 and relative.max() < 0.05, name


def test_imatrix_files_and_the_quantizer(smollm_f32, tmp_path):
    matrix = collect(smollm_f32, longform_calibration(), n_ctx=CTX, chunks=1, dataset="x.txt")
    path = tmp_path / "imatrix.gguf"
    save(matrix, path, "llama")
    again = load(path)
    assert again.chunk_count == 1 and again.chunk_size == CTX and again.datasets == ["x.txt"]
    for name, values in matrix.means().items():
        np.testing.assert_allclose(again.means()[name], values, rtol=1e-6)

    legacy = tmp_path / "imatrix.dat"  # llama-imatrix --output-format dat
    body = b"".join(struct.pack("<i", len(n)) + n.encode() + struct.pack("<ii", 3, v.size)
                    + (v * 3).astype("<f4").tobytes() for n, v in matrix.means().items())
    legacy.write_bytes(struct.pack("<i", len(matrix.sums)) + body + struct.pack("<ii", 3, 1)
                       + b"x")
    for name, values in load(legacy).means().items():
        np.testing.assert_allclose(values, matrix.means()[name], rtol=1e-5)

    # llama.cpp finds each tensor's entry by name: Q2_K's blocks differ with the matrix (an
    # IQ2_XS file would show it too, but takes 10 times as long on this model's fallbacks)
    result = quantize(smollm_f32, tmp_path / "weighted.gguf", "Q2_K", imatrix=path)
    assert result.imatrix_entries == len(matrix.sums) and "Q3_K" in result.tensor_types
    fields = gguf.GGUFReader(result.path).fields
    assert fields["quantize.imatrix.entries_count"].contents() == len(matrix.sums)
    assert fields["quantize.imatrix.dataset"].contents() == "x.txt"
    plain = quantize(smollm_f32, tmp_path / "plain.gguf", "Q2_K")
    weighted, unweighted = (gguf.GGUFReader(p.path) for p in (result, plain))
    changed = [t.name for t, u in zip(weighted.tensors, unweighted.tensors, strict=True)
               if t.tensor_type == u.tensor_type and t.data.tobytes() != u.data.tobytes()]
    assert len(changed) == len(matrix.sums), changed  # every matrix it weights


def test_cli_round_trip(smollm_f32, lw_home, tmp_path):
    imatrix, quant = tmp_path / "im.gguf", tmp_path / "q.gguf"
    run_cli("imatrix", str(smollm_f32), "-o", str(imatrix), "--ctx", str(CTX), "--chunks", "1",
            env_home=lw_home, check=True)
    proc = run_cli("quantize", str(smollm_f32), "-o", str(quant), "--type", "Q4_K_M",
                   "--imatrix", str(imatrix), env_home=lw_home, check=True)
    assert "Q4_K_M" in proc.stderr and "importance matrix of 210 tensors" in proc.stderr
    proc = run_cli("eval-quant", str(smollm_f32), str(quant), "--ctx", str(CTX), "--chunks",
                   "1", "--json", env_home=lw_home, check=True)
    report = json.loads(proc.stdout)
    assert {"ppl_base", "ppl_quant", "kld_mean", "kld_median", "kld_p99",
            "top1_agreement"} <= set(report)
    assert 0 < report["kld_mean"] < 1 and report["text"] == f"lwlocal:{HELDOUT}"
    requant = run_cli("quantize", str(quant), "-o", str(tmp_path / "q2.gguf"), "--type", "Q2_K",
                      env_home=lw_home, check=True)
    assert "was already quantized (" in requant.stderr


def test_convert_straight_to_a_quant(smollm_hf, lw_home, tmp_path):
    out = tmp_path / "smol-q4.gguf"
    run_cli("convert", str(smollm_hf), "-o", str(out), "--outtype", "Q4_K_M", env_home=lw_home,
            check=True)
    types = {t.tensor_type.name for t in gguf.GGUFReader(out).tensors}
    assert "Q4_K" in types and "F16" not in types
    assert sorted(p.name for p in tmp_path.iterdir()) == ["smol-q4.gguf"]  # no f16 left


def _other_model_imatrix(path: Path) -> Path:
    matrix = ImportanceMatrix()
    matrix.add("blk.0.attn_q.weight", np.ones((1, 100)), 16)
    save(matrix, path)
    return path


@pytest.mark.parametrize(("args", "problem"), [
    (["quantize", "{readme}", "-o", "{out}", "--type", "Q4_K_M"], "not a GGUF file"),
    (["quantize", "{model}", "-o", "{out}", "--type", "IQ2_XS"], "needs an importance matrix"),
    (["quantize", "{model}", "-o", "{out}", "--type", "Q4_K_M", "--imatrix", "{readme}"],
     "not a readable importance matrix"),
    (["quantize", "{model}", "-o", "{out}", "--type", "Q4_K_M", "--imatrix", "{other}"],
     "made for another model"),
    (["imatrix", "{model}", "-o", "{out}", "--text", "{short}"], "too short"),
    (["eval-quant", "{model}", "{model}", "--text", "{short}"], "too short"),
    (["convert", "{hf}", "-o", "{out}", "--outtype", "IQ1_M"], "needs an importance matrix"),
])
def test_bad_inputs_fail_in_one_line(args, problem, smollm_f32, smollm_hf, lw_home, tmp_path):
    (tmp_path / "short.txt").write_text("Too short for a chunk.")
    names = {"readme": Path(__file__), "out": tmp_path / "out.gguf", "model": smollm_f32,
             "hf": smollm_hf, "short": tmp_path / "short.txt",
             "other": _other_model_imatrix(tmp_path / "other.gguf")}
    proc = run_cli(*(a.format(**names) for a in args), env_home=lw_home)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and problem in lines[0] and lines[0].startswith("lwlocal: error:")
    assert not (tmp_path / "out.gguf").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_ctrl_c_leaves_no_output(smollm_f32, lw_home, tmp_path):
    out = tmp_path / "q.gguf"
    proc = subprocess.Popen([sys.executable, "-m", "lwlocal", "quantize", str(smollm_f32), "-o",
                             str(out), "--type", "IQ4_XS", "--threads", "1"],
                            env={**__import__("os").environ, "LWLOCAL_HOME": str(lw_home)},
                            stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    partial = tmp_path / ".q.gguf.partial"
    while proc.poll() is None and not _has_bytes(partial):  # Ctrl-C once the quantizer writes
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    assert proc.wait() == 130
    assert [p for p in tmp_path.iterdir() if p != lw_home] == []  # its log aside


def test_a_quantizer_whose_lwlocal_is_killed_ends_too(smollm_f32, lw_home, tmp_path):
    """llama.cpp's quantizer runs in a process of its own, so that Ctrl-C can end it; a
    ``kill -9`` of lwlocal ends it too, rather than leave it writing the output's temporary
    file for a rerun to meet."""
    import psutil

    out = tmp_path / "q.gguf"
    proc = subprocess.Popen([sys.executable, "-m", "lwlocal", "quantize", str(smollm_f32), "-o",
                             str(out), "--type", "IQ4_XS", "--threads", "1"],
                            env={**__import__("os").environ, "LWLOCAL_HOME": str(lw_home)},
                            stderr=subprocess.DEVNULL)
    partial = tmp_path / ".q.gguf.partial"
    while proc.poll() is None and not _has_bytes(partial):  # once the quantizer writes
        time.sleep(0.05)
    children = psutil.Process(proc.pid).children(recursive=True)
    assert children and proc.poll() is None, "the quantizer ended before it could be killed"
    proc.kill()
    proc.wait()
    _, alive = psutil.wait_procs(children, timeout=HANG)
    assert alive == []
    # ended as lwlocal was, not when done: the whole output is a sixth of the f32 model's size
    assert partial.stat().st_size < smollm_f32.stat().st_size / 10


def _has_bytes(path: Path) -> bool:
    """Whether ``path`` exists with something written in it."""
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False
