"""What the installed llama.cpp can do: its backends, its devices, whether it offloads layers."""

from __future__ import annotations

import ctypes
import functools
from dataclasses import dataclass

# ggml's device types (ggml-backend.h: CPU, GPU, IGPU, ACCEL).
DEVICE_TYPES = {0: "CPU", 1: "GPU", 2: "iGPU", 3: "accelerator"}
GPU_BUILD_HINT = "`make demo GPU=cuda` (or metal, vulkan, rocm) builds one that can"


@dataclass(frozen=True)
class LlamaBuild:
    """llama-cpp-python's version, the ggml backends its libllama registered (``CPU``,
    ``CUDA``, ``Metal``, ``Vulkan``, ``ROCm``…), its devices as ``type: description``, and
    llama.cpp's own answer to whether layers can be offloaded."""

    version: str
    backends: tuple[str, ...]
    devices: tuple[str, ...]
    offload: bool
    cpu_repack: bool = False  # the CPU backend keeps repacked copies of some weights (x86 AVX2)


def _registry(lib: ctypes.CDLL) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Backend names and device descriptions from ggml's registry, looked up through libllama
    so that they are those of the ggml it is linked with."""
    lib.ggml_backend_reg_count.restype = ctypes.c_size_t
    lib.ggml_backend_reg_get.restype = ctypes.c_void_p
    lib.ggml_backend_reg_get.argtypes = [ctypes.c_size_t]
    lib.ggml_backend_reg_name.restype = ctypes.c_char_p
    lib.ggml_backend_reg_name.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_dev_count.restype = ctypes.c_size_t
    lib.ggml_backend_dev_get.restype = ctypes.c_void_p
    lib.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
    lib.ggml_backend_dev_description.restype = ctypes.c_char_p
    lib.ggml_backend_dev_description.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_dev_type.restype = ctypes.c_int
    lib.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
    backends = tuple(lib.ggml_backend_reg_name(lib.ggml_backend_reg_get(i)).decode()
                     for i in range(lib.ggml_backend_reg_count()))
    devices = []
    for i in range(lib.ggml_backend_dev_count()):
        dev = lib.ggml_backend_dev_get(i)
        kind = DEVICE_TYPES.get(lib.ggml_backend_dev_type(dev), "device")
        devices.append(f"{kind}: {lib.ggml_backend_dev_description(dev).decode().strip()}")
    return backends, tuple(devices)


def _system_info_backends(info: str) -> tuple[str, ...]:
    """Backend names from ``llama_print_system_info()`` ("CUDA : ARCHS = 900 | … CPU : …"),
    for a libllama whose registry cannot be read directly."""
    names = []
    for part in info.split("|"):
        if " : " in part:
            name = part.split(" : ", 1)[0].strip()
            if name and name not in names:
                names.append(name)
    return tuple(names) or ("CPU",)


@functools.cache
def llama_build() -> LlamaBuild:
    """The installed llama.cpp build (loads libllama, no model)."""
    import llama_cpp

    offload = bool(llama_cpp.llama_supports_gpu_offload())
    try:
        backends, devices = _registry(llama_cpp.llama_cpp._lib)
    except (AttributeError, OSError):
        backends = _system_info_backends(llama_cpp.llama_print_system_info().decode())
        devices = ()
    info = llama_cpp.llama_print_system_info().decode()
    return LlamaBuild(llama_cpp.__version__, backends, devices, offload, cpu_repack(info))


def cpu_repack(info: str) -> bool:
    """Whether the CPU backend repacks Q4_0, Q4_K and IQ4_NL weights into its interleaved
    8x8 layouts (a REPACK build on an AVX2 CPU), from ``llama_print_system_info()``. Other
    CPUs repack other types, which the planner does not model."""
    return "REPACK = 1" in info and "AVX2 = 1" in info
