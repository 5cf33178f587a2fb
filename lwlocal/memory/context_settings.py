"""The llama.cpp context settings a memory plan chooses, and those the user fixes."""

from __future__ import annotations

from dataclasses import dataclass

from lwlocal.runtime.kv_cache import check_kv_type
from lwlocal.util.errors import SettingError

DEFAULT_BATCH = 512
MIN_CTX = 64  # the smallest context a job or a plan may fix


@dataclass(frozen=True)
class Settings:
    """llama.cpp context settings a plan chooses (or the user overrides)."""

    n_ctx: int
    kv_type: str = "f16"
    flash_attn: bool = True
    n_gpu_layers: int = 0
    n_batch: int = DEFAULT_BATCH
    threads: int = 1

    @property
    def gpu_blocks(self) -> int:
        """Repeating blocks llama.cpp puts on the GPU: ``n_gpu_layers`` counts the output layer
        first, then blocks from the last one down (``i_gpu_start = n_layer + 1 - ngl``)."""
        return max(0, self.n_gpu_layers - 1)

    def check(self) -> None:
        check_kv_type(self.kv_type)
        if self.kv_type != "f16" and not self.flash_attn:
            raise SettingError(f"{{kv_type}} {self.kv_type} needs {{flash_attn}} on (llama.cpp "
                               "stores a quantized V cache only with flash attention)")
        check_overrides(Overrides(self.n_ctx, n_gpu_layers=self.n_gpu_layers,
                                  n_batch=self.n_batch))


@dataclass(frozen=True)
class Overrides:
    """Settings the user fixed; the planner chooses the rest. ``kv_quantized_why``: why the KV
    cache must be quantized where the user did not fix its type (speculation needs one)."""

    n_ctx: int | None = None
    kv_type: str | None = None
    flash_attn: bool | None = None
    n_gpu_layers: int | None = None
    n_batch: int | None = None
    kv_quantized_why: str | None = None


def check_overrides(fixed: Overrides) -> None:
    """Refuse memory settings no context can be made with (0 is not "the plan's choice")."""
    for name, value, least in (("n_ctx", fixed.n_ctx, MIN_CTX), ("n_batch", fixed.n_batch, 1),
                               ("n_gpu_layers", fixed.n_gpu_layers, 0)):
        if value is not None and value < least:
            raise SettingError(f"{{{name}}} {value}: must be at least {least}")
