"""The planner's RAM prediction against the peak RSS of real runs of the default model.

Each point loads the model in a child process, fills the context and generates a few tokens.
Two points of benchmarks/planner_accuracy.py's grid: without flash attention (the attention
scores dominate the compute memory) and with a quantized KV cache under flash attention.
"""

import pytest

from lwlocal.memory.planner import Settings, predict, shape_from_gguf
from lwlocal.memory.probe import measure
from lwlocal.util.cpu import physical_cores


@pytest.mark.parametrize("n_ctx,kv_type,flash_attn", [(2048, "f16", False), (2048, "q4_0", True)])
def test_predicted_ram_within_15_percent_of_measured(default_model, n_ctx, kv_type, flash_attn):
    settings = Settings(n_ctx, kv_type, flash_attn, 0, 512, physical_cores())
    predicted = predict(shape_from_gguf(default_model), settings).ram_bytes
    measured = measure(default_model, settings)
    assert predicted == pytest.approx(measured, rel=0.15), (predicted, measured)
