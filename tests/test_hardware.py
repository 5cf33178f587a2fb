import os
import stat

from lwlocal import hardware


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


def test_nvidia_smi_is_parsed(tmp_path, monkeypatch):
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'NVIDIA H100 80GB HBM3, 81559, 80000'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert hardware.nvidia_gpus() == [("NVIDIA H100 80GB HBM3", 81559 * 2**20, 80000 * 2**20)]
    machine = hardware.detect()
    assert machine.gpu == "NVIDIA H100 80GB HBM3" and machine.vram_free == 80000 * 2**20


def test_this_machine():
    machine = hardware.detect()
    assert 0 < machine.ram_available <= machine.ram_total
    assert machine.cores >= 1 and machine.threads >= machine.cores
