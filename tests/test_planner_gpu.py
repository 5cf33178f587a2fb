"""The planner's GPU side: VRAM against measurements on a real GPU, layer placement, what a
CPU-only llama.cpp build can do, peak vs steady RAM (fast: no model is run here)."""

import pytest

from lwlocal.families.base import ModelCard
from lwlocal.memory.allocations import GPU_RUNTIME_DEFAULT, GiB, MiB, predict
from lwlocal.memory.context_need import context_needed
from lwlocal.memory.context_settings import Overrides, Settings
from lwlocal.memory.hardware import Machine
from lwlocal.memory.model_shape import ModelShape
from lwlocal.memory.planner import plan
from lwlocal.models.catalogue import CARDS

# ggml bytes per weight of the types llama.cpp's Q4_K_M mix uses.
Q4_K, Q6_K, Q5_0, Q8_0, F32 = 144 / 256, 210 / 256, 22 / 32, 34 / 32, 4.0
K_BLOCK = 256


def _more_bits(i: int, n: int) -> bool:
    """llama.cpp's use_more_bits: layers whose attn_v / ffn_down get a larger type."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def _k_quant(bpw: float, columns: int) -> float:
    """A k-quant, or llama.cpp's fallback when rows are not a multiple of 256."""
    if columns % K_BLOCK == 0:
        return bpw
    return {Q4_K: Q5_0, Q6_K: Q8_0}[bpw]


def q4_k_m_shape(card: ModelCard) -> ModelShape:
    """Exact tensor sizes of ``card``'s model quantized to Q4_K_M, by llama.cpp's type rules:
    embeddings Q4_K, output Q6_K, attn_v (GLM: the fused QKV, with its f32 bias) and ffn_down
    Q6_K in the more-bits layers and Q4_K elsewhere, norms F32. Checked tensor by tensor against
    one-block files of both shapes made by benchmarks/synth_checkpoint.py and lwlocal convert."""
    e, f, n = card.hidden_size, card.ffn_size, card.n_layers
    kv = card.n_kv_heads * card.head_dim
    layers = []
    for i in range(n):
        more = Q6_K if _more_bits(i, n) else Q4_K
        down = _k_quant(more, f) * f * e
        if card.architecture == "chatglm":  # fused QKV with bias, fused gate+up
            qkv_rows = e + 2 * kv
            size = e * qkv_rows * more + qkv_rows * F32 + e * e * Q4_K + 2 * e * f * Q4_K + down
        else:
            size = 2 * e * e * Q4_K + e * kv * (Q4_K + more) + 2 * e * f * Q4_K + down
        layers.append(int(size + 2 * e * F32))
    rope_freqs = card.head_dim // 2 * F32 if card.architecture == "llama" else 0
    output = int(card.vocab_size * e * Q6_K + e * F32 + rope_freqs)
    return ModelShape(card.name, n, card.n_heads, card.n_kv_heads, card.head_dim, e, f,
                      card.vocab_size, card.context_length, tuple(layers),
                      int(card.vocab_size * e * Q4_K), output, exact=True, quant="Q4_K_M")


L = q4_k_m_shape(CARDS["longwriter-llama3.1-8b"])
G = q4_k_m_shape(CARDS["longwriter-glm4-9b"])

# Peak GPU memory measured on an NVIDIA H200 (CUDA 13, the llama.cpp of llama-cpp-python 0.3.36
# built for sm_90; NVML sampled every 20 ms) for zero-weight Q4_K_M models of these shapes made
# with `lwlocal convert` + `lwlocal quantize` (issue 14). Full offload was measured with the
# context filled, partial offload after one 512-token batch (``depth``).
# (model, n_ctx, kv, flash attention, n_gpu_layers, n_batch, depth, measured MiB)
MEASURED = [
    (L, 8192, "f16", True, 33, 512, 8192, 6286),
    (L, 32768, "f16", True, 33, 512, 32768, 9358),
    (L, 32768, "q8_0", True, 33, 512, 32768, 7438),
    (L, 32768, "q4_0", True, 33, 512, 32768, 6414),
    (L, 32768, "f16", True, 33, 2048, 32768, 10152),
    (G, 32768, "f16", True, 41, 512, 32768, 7808),
    (G, 8192, "q8_0", True, 41, 512, 8192, 6700),
    (L, 8192, "f16", False, 33, 512, 8192, 6932),
    (L, 32768, "f16", False, 33, 512, 32768, 12356),
    (L, 32768, "f16", False, 33, 2048, 32768, 21792),
    (G, 32768, "f16", False, 41, 512, 32768, 10742),
    (L, 32768, "f16", True, 16, 512, 512, 5070),
    (L, 8192, "q8_0", True, 16, 512, 512, 3406),
    (L, 8192, "f16", False, 16, 512, 512, 4064),
    (G, 32768, "f16", True, 20, 512, 512, 4450),
]


def test_reconstructed_shapes_match_the_measured_files():
    """The Q4_K_M sizes above give the files measured (4688 and 5962 MiB), less their
    tokenizer metadata."""
    for shape, file_mib in ((L, 4688), (G, 5962)):
        assert shape.weight_bytes / MiB == pytest.approx(file_mib, rel=0.002)


@pytest.mark.parametrize("shape,n_ctx,kv,fa,ngl,n_batch,depth,measured", MEASURED)
def test_vram_prediction_within_5_percent_of_a_real_gpu(shape, n_ctx, kv, fa, ngl, n_batch,
                                                        depth, measured):
    settings = Settings(n_ctx, kv, fa, ngl, n_batch, 8)
    predicted = predict(shape, settings, GPU_RUNTIME_DEFAULT, filled=depth).vram_bytes / MiB
    assert predicted == pytest.approx(measured, rel=0.05)


def test_the_planner_predicts_the_peak_at_a_full_context():
    """Without flash attention CUDA's pool grows with the context: the plan counts all of it."""
    s = Settings(32768, "f16", False, 33, 512, 8)
    full = predict(L, s, GPU_RUNTIME_DEFAULT)
    assert full.parts["vram_cuda_pool"] == 32768 * 512 * 32 * 2
    assert full.vram_bytes > predict(L, s, GPU_RUNTIME_DEFAULT, filled=512).vram_bytes
    assert predict(L, Settings(32768, "f16", True, 33, 512, 8)).parts["vram_cuda_pool"] == 0


def test_partial_offload_places_the_output_layer_first():
    """``n_gpu_layers`` N: the output layer and the last N - 1 blocks (llama.cpp's
    ``i_gpu_start = n_layer + 1 - N``)."""
    def vram_weights(ngl: int) -> int:
        return predict(L, Settings(4096, n_gpu_layers=ngl)).parts.get("vram_weights", 0)

    assert vram_weights(0) == 0
    assert vram_weights(1) == L.output_bytes
    assert vram_weights(2) == L.output_bytes + L.layer_bytes[-1]
    assert vram_weights(32) == L.output_bytes + sum(L.layer_bytes[1:])
    assert vram_weights(33) == vram_weights(99) == L.weight_bytes - L.input_bytes
    kv_16 = predict(L, Settings(4096, n_gpu_layers=16)).parts["vram_kv_cache"]
    assert kv_16 == 15 * 4096 * 8 * 128 * 2 * 2


GPU = Machine(32 * GiB, 28 * GiB, 8 * GiB, 8 * GiB, "NVIDIA GeForce RTX 4060", False, 8, 16,
              gpus=1, offload=True)
NEED = context_needed(10000, "direct", 1.3, 1)


def test_a_cpu_only_build_never_plans_gpu_layers():
    cpu_build = Machine(**{**vars(GPU), "offload": False})
    chosen = plan(L, cpu_build, NEED)
    assert chosen.settings.n_gpu_layers == 0 and chosen.memory.vram_bytes == 0
    assert any("CPU-only" in r and "make demo GPU=cuda" in r for r in chosen.reasons)
    asked = plan(L, cpu_build, NEED, Overrides(n_gpu_layers=40))
    assert asked.settings.n_gpu_layers == 0
    assert len(asked.warnings) == 1 and "{n_gpu_layers} 40 cannot take effect" in asked.warnings[0]
    other_machine = plan(L, cpu_build, NEED, vram=24 * GiB)  # planning for another machine
    assert other_machine.settings.n_gpu_layers == L.n_layers + 1 and not other_machine.warnings


def test_gpu_plan_counts_the_runtime_and_says_whether_it_was_measured():
    chosen = plan(L, GPU, NEED)
    assert 0 < chosen.settings.n_gpu_layers <= L.n_layers + 1
    assert chosen.memory.parts["vram_runtime"] == GPU_RUNTIME_DEFAULT == chosen.gpu_runtime
    assert not chosen.gpu_runtime_measured
    assert chosen.memory.vram_bytes <= chosen.vram_budget
    measured = Machine(**{**vars(GPU), "gpu_runtime": 700 * MiB})
    here = plan(L, measured, NEED).as_dict()
    assert here["gpu_runtime_bytes"] == 700 * MiB and here["gpu_runtime_measured"] is True
    cpu = plan(L, measured, NEED, Overrides(n_gpu_layers=0)).as_dict()
    assert cpu["gpu_runtime_bytes"] == 0 and cpu["gpu_runtime_measured"] is False


def test_ram_peaks_while_loading_when_layers_are_offloaded():
    """llama.cpp maps (and reads) the whole file while loading, then frees what went to the
    GPU: at full offload the peak is the load, far above the steady RSS."""
    full = predict(L, Settings(8192, n_gpu_layers=33), GPU_RUNTIME_DEFAULT)
    assert full.ram_bytes == full.ram_load_bytes > 2 * full.ram_steady_bytes
    assert full.ram_load_bytes > L.weight_bytes
    on_cpu = predict(L, Settings(8192))
    assert on_cpu.ram_bytes == on_cpu.ram_steady_bytes >= on_cpu.ram_load_bytes


def test_unified_memory_shares_ram_with_the_gpu():
    """On Apple silicon the KV cache and compute buffers on the GPU come out of the same RAM."""
    mac = Machine(16 * GiB, 12 * GiB, 12 * GiB, 12 * GiB, "Apple GPU", True, 8, 8, gpus=1,
                  offload=True)
    chosen = plan(L, mac, NEED)
    memory = chosen.memory
    shared = memory.vram_bytes - memory.parts.get("vram_weights", 0)
    assert memory.ram_bytes + shared <= chosen.ram_budget or not chosen.fits
