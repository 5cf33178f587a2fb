"""The KV cache types lwlocal offers, by llama.cpp's names (``--cache-type-k``); their GGML
type and size per element come from the ``gguf`` package's constants."""

from __future__ import annotations

from lwlocal.util.errors import SettingError

KV_CACHE_TYPES = ("f16", "q8_0", "q4_0")
DRAFT_KV_TYPE = "f16"  # a draft model's: any head size takes it, and its numbers never change
# the output


def check_kv_type(name: str) -> None:
    """Refuse a KV cache type lwlocal does not offer, naming the setting."""
    if name not in KV_CACHE_TYPES:
        raise SettingError(f"{{kv_type}} {name}: choose one of {', '.join(KV_CACHE_TYPES)}")


def ggml_type(name: str) -> int:
    """llama.cpp's ``GGML_TYPE_*`` value of a KV cache type."""
    from gguf import GGMLQuantizationType

    return int(GGMLQuantizationType[name.upper()])


def bytes_per_element(name: str) -> float:
    """Bytes one cached K or V element takes (a quantized block's bytes over its elements)."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    block, size = GGML_QUANT_SIZES[GGMLQuantizationType[name.upper()]]
    return size / block
