"""Measuring the GPU runtime's own memory, with a stand-in nvidia-smi (no GPU needed)."""

import pytest

from lwlocal.memory import gpu_runtime, hardware
from lwlocal.memory.allocations import predict
from lwlocal.memory.context_settings import Settings
from lwlocal.memory.model_shape import shape_from_gguf

USED_BEFORE, USED_DURING = 1000, 1900  # MiB that the stand-in nvidia-smi reports

NVIDIA_SMI = f"""
count="$(dirname "$0")/count"
case "$1" in
  --query-gpu=driver_version) echo 580.65.06 ;;
  --query-gpu=name,memory.total,memory.free) echo 'NVIDIA GeForce RTX 4070, 12282, 11000' ;;
  --query-gpu=memory.used)
    if [ -e "$count" ]; then echo {USED_DURING}; else touch "$count"; echo {USED_BEFORE}; fi ;;
esac
"""


def test_measure_keeps_the_runtime_for_this_gpu_driver_and_build(fake_nvidia_smi,
                                                                 default_model):
    fake_nvidia_smi(NVIDIA_SMI)
    gpu = "NVIDIA GeForce RTX 4070"
    assert gpu_runtime.measured_runtime(gpu) is None
    runtime = gpu_runtime.measure_gpu_runtime(default_model, gpu)
    probe = Settings(gpu_runtime.PROBE_TOKENS, "f16", True, 10**6, gpu_runtime.PROBE_TOKENS, 1)
    buffers = predict(shape_from_gguf(default_model), probe, filled=512).vram_bytes
    assert runtime == (USED_DURING - USED_BEFORE) * 2**20 - buffers
    assert gpu_runtime.measured_runtime(gpu) == runtime
    assert hardware.detect().gpu_runtime == runtime
    assert gpu_runtime.measured_runtime("NVIDIA GeForce RTX 3060") is None


def test_a_probe_that_fails_is_one_line(fake_nvidia_smi, tmp_path):
    fake_nvidia_smi(NVIDIA_SMI)
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(gpu_runtime.LwlocalError, match="the GPU probe with .* failed"):
        gpu_runtime.measure_gpu_runtime(broken, "NVIDIA GeForce RTX 4070")
    assert gpu_runtime.measured_runtime("NVIDIA GeForce RTX 4070") is None
