import pytest

from lwlocal.memory import hardware
from lwlocal.memory.nvidia_smi import nvidia_gpus


def test_cgroup_v2_limit(tmp_path):
    (tmp_path / "memory.max").write_text("4294967296\n")
    (tmp_path / "memory.current").write_text("1073741824\n")
    assert hardware.cgroup_memory(tmp_path) == (4 * 2**30, 2**30)


def test_cgroup_v2_unlimited_and_v1(tmp_path):
    (tmp_path / "memory.max").write_text("max\n")
    v1 = tmp_path / "memory"
    v1.mkdir()
    (v1 / "memory.limit_in_bytes").write_text(str(2**63 - 4096))
    assert hardware.cgroup_memory(tmp_path) == (None, None)
    (v1 / "memory.limit_in_bytes").write_text(str(2**31))
    (v1 / "memory.usage_in_bytes").write_text(str(2**20))
    assert hardware.cgroup_memory(tmp_path) == (2**31, 2**20)


def test_nvidia_smi_is_parsed(fake_nvidia_smi):
    fake_nvidia_smi("echo 'NVIDIA H100 80GB HBM3, 81559, 80000'")
    assert nvidia_gpus() == [("NVIDIA H100 80GB HBM3", 81559 * 2**20, 80000 * 2**20)]
    machine = hardware.detect()
    assert machine.gpu == "NVIDIA H100 80GB HBM3" and machine.vram_free == 80000 * 2**20
    assert machine.gpus == 1


def test_several_gpus_and_unreported_memory(fake_nvidia_smi):
    """lwlocal runs on the first GPU alone; a GPU whose memory reads "[N/A]" is skipped."""
    fake_nvidia_smi("echo 'NVIDIA GeForce RTX 4090, 24564, 23000'\n"
                    "echo 'NVIDIA GeForce RTX 3060, 12288, 12000'\n"
                    "echo 'NVIDIA GB10, [N/A], [N/A]'")
    assert [g[0] for g in nvidia_gpus()] == ["NVIDIA GeForce RTX 4090",
                                                      "NVIDIA GeForce RTX 3060"]
    machine = hardware.detect()
    assert machine.gpu == "NVIDIA GeForce RTX 4090" and machine.vram_free == 23000 * 2**20
    assert machine.gpus == 2
    fake_nvidia_smi("echo 'NVIDIA GB10, [N/A], [N/A]'")
    assert nvidia_gpus() == [] and hardware.detect().gpu is None


@pytest.mark.parametrize("script", [
    "echo 'NVIDIA GB10, [N/A], [N/A]'",
    "echo '[N/A]'",
    "echo 'NVIDIA GB10, [Not Supported], 100'",
    "printf 'NVIDIA \\377\\376, 100, 50\\n'",  # not UTF-8
    "echo 'No devices were found'; exit 6",
    "exit 0",
])
def test_odd_nvidia_smi_output_means_no_usable_gpu_never_a_crash(fake_nvidia_smi, script):
    fake_nvidia_smi(script)
    gpus = nvidia_gpus()
    assert gpus in ([], [("NVIDIA \ufffd\ufffd", 100 * 2**20, 50 * 2**20)])
    machine = hardware.detect()
    assert machine.vram_total == (gpus[0][1] if gpus else 0)


def test_the_llama_cpp_build_is_reported():
    """Backends and devices from ggml's registry; offload as llama.cpp itself answers it."""
    import llama_cpp

    from lwlocal.runtime.llama_build import _system_info_backends, llama_build

    build = llama_build()
    assert "CPU" in build.backends and any(d.startswith("CPU: ") for d in build.devices)
    assert build.offload == llama_cpp.llama_supports_gpu_offload() == hardware.detect().offload
    assert build.offload == (len(build.backends) > 1)
    info = "CUDA : ARCHS = 900 | USE_GRAPHS = 1 | CPU : SSE3 = 1 | AVX2 = 1 | "
    assert _system_info_backends(info) == ("CUDA", "CPU")


def test_this_machine():
    machine = hardware.detect()
    assert 0 < machine.ram_available <= machine.ram_total
    assert machine.cores >= 1 and machine.threads >= machine.cores
