"""The planner's memory model and choices (fast: no model is run here)."""

import re
import subprocess
import sys

import pytest

from lwlocal.cli import error_text
from lwlocal.memory.allocations import GiB, MiB, compute_bytes_allocated, kv_bytes, predict
from lwlocal.memory.context_need import context_needed
from lwlocal.memory.context_settings import Overrides, Settings
from lwlocal.memory.hardware import Machine
from lwlocal.memory.model_shape import shape_from_card, shape_from_gguf
from lwlocal.memory.planner import plan
from lwlocal.models.catalogue import CARDS
from lwlocal.util.errors import LwlocalError

CPU_ONLY = Machine(ram_total=24 * GiB, ram_available=20 * GiB, vram_total=0, vram_free=0,
                   gpu=None, unified=False, cores=2, threads=2)


@pytest.fixture(scope="module")
def shape(default_model):
    return shape_from_gguf(default_model)


def test_gguf_shape(shape, default_model):
    assert (shape.n_layers, shape.n_heads, shape.n_kv_heads, shape.head_dim) == (30, 9, 3, 64)
    assert shape.n_vocab == 49152 and shape.n_ff == 1536 and shape.context_length == 8192
    tensor_bytes = shape.weight_bytes
    assert 0.9 * default_model.stat().st_size < tensor_bytes < default_model.stat().st_size


def test_card_kv_cache_32k():
    glm = shape_from_card(CARDS["longwriter-glm4-9b"])
    llama = shape_from_card(CARDS["longwriter-llama3.1-8b"])
    assert kv_bytes(glm, 32768, "f16") == 1.25 * GiB
    assert kv_bytes(llama, 32768, "f16") == 4 * GiB
    assert kv_bytes(llama, 32768, "q8_0") < 2.2 * GiB


LOG_CODE = """
import sys, llama_cpp
ctx, fa, kv = int(sys.argv[2]), sys.argv[3] == "1", {"f16": 1, "q8_0": 8, "q4_0": 2}[sys.argv[4]]
llama_cpp.Llama(sys.argv[1], n_ctx=ctx, n_batch=512, n_ubatch=512, flash_attn=fa,
                type_k=kv, type_v=kv, verbose=True)
"""


@pytest.mark.parametrize("n_ctx,fa,kv", [(2048, False, "f16"), (8192, False, "f16"),
                                         (8192, True, "q8_0"), (4096, True, "q4_0")])
def test_buffer_sizes_match_llama_cpp_logs(shape, default_model, n_ctx, fa, kv):
    """The KV cache and compute buffer sizes llama.cpp reports (what the VRAM model uses)."""
    log = subprocess.run([sys.executable, "-c", LOG_CODE, str(default_model), str(n_ctx),
                          str(int(fa)), kv], capture_output=True, text=True, check=True).stderr
    sizes = dict(re.findall(r"CPU (KV|compute) buffer size =\s+([\d.]+) MiB", log))
    settings = Settings(n_ctx, kv, fa, 0, 512, 2)
    assert kv_bytes(shape, n_ctx, kv) / MiB == pytest.approx(float(sizes["KV"]), abs=0.01)
    allocated = compute_bytes_allocated(shape, settings) / MiB
    assert allocated == pytest.approx(float(sizes["compute"]), rel=0.05)


def test_plan_on_the_cpu_takes_the_whole_job_over_a_batch_invariant_cache(shape, monkeypatch):
    """On the CPU a q8_0 cache with flash attention (a batch computed as one token at a time:
    docs/reproducible.md), f16 only where flash attention is off; a thread per core unless
    $LWLOCAL_THREADS says otherwise."""
    monkeypatch.delenv("LWLOCAL_THREADS", raising=False)
    need = context_needed(2000, "agentwrite", 1.3, 8)
    chosen = plan(shape, CPU_ONLY, need)
    assert chosen.fits and chosen.settings.n_ctx == need.full
    assert chosen.settings.kv_type == "q8_0" and chosen.settings.flash_attn
    assert chosen.settings.n_gpu_layers == 0 and chosen.settings.threads == 2
    assert any("one token at a time" in r for r in chosen.reasons)
    assert len(chosen.reasons) >= 6
    no_fa = plan(shape, CPU_ONLY, need, Overrides(flash_attn=False))
    assert no_fa.settings.kv_type == "f16"
    assert any("needs flash attention, which is off" in r for r in no_fa.reasons)
    monkeypatch.setenv("LWLOCAL_THREADS", "1")
    assert plan(shape, CPU_ONLY, need).settings.threads == 1
    monkeypatch.setenv("LWLOCAL_THREADS", "two")
    with pytest.raises(LwlocalError, match=r"^LWLOCAL_THREADS=two: must be a whole number"):
        plan(shape, CPU_ONLY, need)


def test_with_gpu_layers_the_most_precise_cache_that_fits(shape):
    """Offloading, f16 first (a GPU's batch kernels are not checked to be one token's);
    speculating, a quantized cache, and why."""
    gpu = Machine(ram_total=24 * GiB, ram_available=20 * GiB, vram_total=8 * GiB,
                  vram_free=8 * GiB, gpu="a GPU", unified=False, cores=2, threads=2,
                  offload=True)
    need = context_needed(2000, "agentwrite", 1.3, 8)
    chosen = plan(shape, gpu, need)
    assert chosen.settings.n_gpu_layers > 0 and chosen.settings.kv_type == "f16"
    why = "for {speculate} lookup: a quantized cache keeps its output the same"
    speculating = plan(shape, gpu, need, Overrides(kv_quantized_why=why))
    assert speculating.settings.kv_type == "q8_0"
    assert any(r.endswith(why) for r in speculating.reasons)


def test_tight_memory_quantizes_the_kv_cache_further_then_shrinks(shape):
    need = context_needed(4000, "agentwrite", 1.3, 10)
    smallest_q8 = predict(shape, Settings(need.full, "q8_0", True, 0, 128, 2)).ram_bytes
    tight = plan(shape, CPU_ONLY, need, ram=int(smallest_q8 * 0.99 / 0.9))
    assert tight.fits and tight.settings.kv_type == "q4_0"
    assert tight.settings.n_ctx == need.full
    assert tight.memory.ram_bytes <= tight.ram_budget
    assert any("q8_0 would need" in r for r in tight.reasons)


def test_nothing_fits_says_what_would(shape):
    need = context_needed(6000, "direct", 1.3, 1)
    hopeless = plan(shape, CPU_ONLY, need, ram=50 * MiB)
    assert not hopeless.fits
    text = " ".join(hopeless.suggestions)
    assert "does not fit" in text and "agentwrite" in text


def test_direct_beyond_the_trained_context_does_not_fit(shape):
    need = context_needed(9000, "direct", 1.3, 1)
    assert need.minimum > shape.context_length
    assert not plan(shape, CPU_ONLY, need).fits


def test_overrides_are_kept_and_checked(shape):
    need = context_needed(1000, "agentwrite", 1.3, 5)
    fixed = plan(shape, CPU_ONLY, need, Overrides(n_ctx=3072, kv_type="q8_0", n_batch=128))
    s = fixed.settings
    assert (s.n_ctx, s.kv_type, s.n_batch, s.flash_attn) == (3072, "q8_0", 128, True)
    assert any("as you asked" in r for r in fixed.reasons)
    with pytest.raises(LwlocalError, match="kv_type q4_0 needs flash_attn on") as caught:
        plan(shape, CPU_ONLY, need, Overrides(kv_type="q4_0", flash_attn=False))
    assert error_text(caught.value).startswith("--kv-type q4_0 needs --flash-attn on")


def test_gpu_layers_fill_the_vram_budget():
    card = shape_from_card(CARDS["longwriter-llama3.1-8b"], "Q4_K_M")
    gpu = Machine(32 * GiB, 28 * GiB, 8 * GiB, 6 * GiB, "test GPU", False, 8, 16, gpus=1,
                  offload=True)
    need = context_needed(10000, "direct", 1.3, 1)
    chosen = plan(card, gpu, need)
    assert 0 < chosen.settings.n_gpu_layers < card.n_layers
    assert chosen.memory.vram_bytes <= chosen.vram_budget
    more = predict(card, Settings(**{**vars(chosen.settings),
                                     "n_gpu_layers": chosen.settings.n_gpu_layers + 1}),
                   chosen.gpu_runtime)
    assert more.vram_bytes > chosen.vram_budget
    big = plan(card, Machine(64 * GiB, 60 * GiB, 80 * GiB, 78 * GiB, "big", False, 8, 16,
                             gpus=1, offload=True), need)
    assert big.settings.n_gpu_layers == card.n_layers + 1  # every layer and the output
    assert big.memory.ram_steady_bytes < 2 * GiB < big.memory.ram_bytes  # the peak: loading


def test_card_quant_sizes_scale_with_bits():
    card = CARDS["longwriter-glm4-9b"]
    q4 = shape_from_card(card, "Q4_K_M").weight_bytes
    q8 = shape_from_card(card, "Q8_0").weight_bytes
    assert 5 * GiB < q4 < 6.5 * GiB and q8 / q4 == pytest.approx(8.5 / 4.89, rel=0.01)
    with pytest.raises(LwlocalError, match="unknown"):
        shape_from_card(card, "Q9_K")


def test_repacked_weights_count_twice_on_the_cpu(tmp_path):
    """On an AVX2 llama.cpp the CPU backend copies Q4_0/Q4_K/IQ4_NL matrices whose rows come in
    eights into its 8x8 layouts, and the mapped originals stay resident: those bytes count
    twice, for the layers on the CPU only (measured: a 4-layer GLM-4-9B-wide Q4_K_M logs a
    297.00 MiB CPU_REPACK buffer, what shape_from_gguf counts; benchmarks/full_scale.py)."""
    import gguf
    import numpy as np

    from lwlocal.runtime.llama_build import cpu_repack

    Q = gguf.GGMLQuantizationType
    writer = gguf.GGUFWriter(tmp_path / "m.gguf", "llama")
    K = gguf.Keys.LLM
    for key, value in ((K.BLOCK_COUNT, 2), (K.EMBEDDING_LENGTH, 256), (K.FEED_FORWARD_LENGTH, 256),
                       (gguf.Keys.Attention.HEAD_COUNT, 2), (K.CONTEXT_LENGTH, 512)):
        writer.add_uint32(key.format(arch="llama"), value)
    block = gguf.GGML_QUANT_SIZES

    def add(name: str, rows: int, qtype: gguf.GGMLQuantizationType) -> int:
        row_bytes = 256 // block[qtype][0] * block[qtype][1]
        writer.add_tensor(name, np.zeros((rows, row_bytes), np.uint8), raw_dtype=qtype)
        return rows * row_bytes

    add("token_embd.weight", 64, Q.Q4_K)  # looked up by row: never repacked
    repacked = [add("blk.0.ffn_up.weight", 256, Q.Q4_K) + add("blk.0.attn_q.weight", 256, Q.Q4_0),
                add("blk.1.ffn_up.weight", 256, Q.IQ4_NL)]
    add("blk.0.attn_v.weight", 12, Q.Q4_K)  # rows not a multiple of 8
    add("blk.1.ffn_down.weight", 256, Q.Q6_K)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    shape = shape_from_gguf(tmp_path / "m.gguf")
    assert shape.layer_repacked == tuple(repacked)
    s = Settings(512)
    plain, twice = predict(shape, s), predict(shape, s, cpu_repack=True)
    assert twice.ram_bytes - plain.ram_bytes == sum(repacked)
    offloaded = Settings(512, n_gpu_layers=2)  # the output and the last block on a GPU
    assert predict(shape, offloaded, cpu_repack=True).parts["ram_repacked"] == repacked[0]
    assert cpu_repack("CPU : SSE3 = 1 | AVX2 = 1 | FMA = 1 | REPACK = 1 | ")
    assert not cpu_repack("CPU : NEON = 1 | ARM_FMA = 1 | REPACK = 1 | ")
    assert not cpu_repack("CPU : AVX2 = 1 | FMA = 1 | ")
