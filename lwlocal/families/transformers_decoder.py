"""transformers' own decoder layout (``model.layers.N.self_attn`` and ``mlp``), which Llama,
Qwen2 and native GLM-4 checkpoints share: its tensor names as GGUF names, the tensors every
checkpoint with a gated MLP has, and the dimensions and GGUF metadata its config.json keys
give."""

from __future__ import annotations

from gguf import Keys

from lwlocal.families.base import (
    EPSILON,
    POSITIVE,
    Config,
    Shape,
    Warn,
    grouped_heads,
    head_size,
    hparam,
    rope,
    rope_section,
)

K, A, R = Keys.LLM, Keys.Attention, Keys.Rope

LAYER = r"model\.layers\.(?P<bid>\d+)\."
OUTER_NAMES = (
    (r"model\.embed_tokens\.weight", "token_embd.weight"),
    (r"model\.norm\.weight", "output_norm.weight"),
    (r"lm_head\.weight", "output.weight"),
)
ATTENTION_NAMES = (
    (LAYER + r"input_layernorm\.weight", "blk.{bid}.attn_norm.weight"),
    (LAYER + r"self_attn\.(?P<p>[qkv])_proj\.(?P<kind>weight|bias)", "blk.{bid}.attn_{p}.{kind}"),
    (LAYER + r"self_attn\.o_proj\.weight", "blk.{bid}.attn_output.weight"),
    (LAYER + r"post_attention_layernorm\.weight", "blk.{bid}.ffn_norm.weight"),
)
GATED_MLP_NAMES = (
    (LAYER + r"mlp\.(?P<p>gate|up|down)_proj\.weight", "blk.{bid}.ffn_{p}.weight"),
)
NAMES = OUTER_NAMES + ATTENTION_NAMES + GATED_MLP_NAMES
SKIP = (LAYER + r"self_attn\.rotary_emb\.inv_freq",)
REQUIRED = ("token_embd.weight", "output_norm.weight", "blk.{bid}.attn_norm.weight",
            "blk.{bid}.attn_q.weight", "blk.{bid}.attn_k.weight", "blk.{bid}.attn_v.weight",
            "blk.{bid}.attn_output.weight", "blk.{bid}.ffn_norm.weight",
            "blk.{bid}.ffn_gate.weight", "blk.{bid}.ffn_up.weight", "blk.{bid}.ffn_down.weight")


def rope_scaling_type(config: Config) -> str | None:
    scaling = rope(config)
    return scaling.get("rope_type") or scaling.get("type")


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
    elif kind not in (None, "llama3", "default"):  # llama3: the Llama family adds rope_freqs
        warn(f"rope_scaling of type {kind} is not converted; long contexts may degrade")
    return meta
