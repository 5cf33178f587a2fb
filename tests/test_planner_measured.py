"""The planner's RAM prediction against the peak RSS of real runs of the default model.

Each point loads the model in a child process, fills the context and generates a few tokens.
Two points of benchmarks/planner_accuracy.py's grid: without flash attention (the attention
scores dominate the compute memory) and with a quantized KV cache under flash attention.
"""

import pytest

from lwlocal.memory.allocations import predict
from lwlocal.memory.context_settings import Settings
from lwlocal.memory.hardware import detect
from lwlocal.memory.model_shape import shape_from_gguf
from lwlocal.memory.probe import measure_peak_rss
from lwlocal.util.cpu import default_threads
from lwlocal.util.errors import LwlocalError


@pytest.mark.parametrize("n_ctx,kv_type,flash_attn", [(2048, "f16", False), (1024, "q4_0", True)])
def test_predicted_ram_within_15_percent_of_measured(default_model, n_ctx, kv_type, flash_attn):
    settings = Settings(n_ctx, kv_type, flash_attn, 0, 512, default_threads())
    predicted = predict(shape_from_gguf(default_model), settings).ram_bytes
    measured = measure_peak_rss(default_model, settings)
    assert predicted == pytest.approx(measured, rel=0.15), (predicted, measured)


def test_predicted_ram_with_a_draft_model_within_15_percent_of_measured(default_model,
                                                                       draft_gguf):
    """Speculating with a draft model: its weights (repacked too: it is Q4_0), context and f16
    KV cache counted in."""
    settings = Settings(1024, "q8_0", True, 0, 512, default_threads())
    target, repack = shape_from_gguf(default_model), detect().cpu_repack
    alone = predict(target, settings, cpu_repack=repack).ram_bytes
    predicted = predict(target, settings, cpu_repack=repack,
                        draft=shape_from_gguf(draft_gguf)).ram_bytes
    measured = measure_peak_rss(default_model, settings, draft=draft_gguf)
    assert predicted - alone > 0.5 * draft_gguf.stat().st_size
    assert predicted == pytest.approx(measured, rel=0.15), (predicted, measured)


def test_a_probe_that_fails_is_one_line_naming_the_model(tmp_path):
    fake = tmp_path / "fake.gguf"
    fake.write_text("not a model")
    with pytest.raises(LwlocalError) as info:
        measure_peak_rss(fake, Settings(256, "f16", False, 0, 256, 1))
    message = str(info.value)
    assert message.startswith(f"{fake}: the memory probe failed (") and "\n" not in message
