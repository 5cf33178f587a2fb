"""GLM-4's config.json in either layout (THUDM's remote code or transformers' native one): its
dimensions, rope base and the GGUF ``chatglm`` metadata they give."""

from __future__ import annotations

from gguf import Keys

from lwlocal.families.base import (
    EPSILON,
    FLAG,
    POSITIVE,
    Config,
    Shape,
    Warn,
    grouped_heads,
    head_size,
    hparam,
    rope,
    value,
)
from lwlocal.util.errors import LwlocalError

K, A, R = Keys.LLM, Keys.Attention, Keys.Rope

GLM_DEFAULT_CONTEXT = 8192  # GLM-4-9B's base context
GLM_ROPE_BASE = 10000.0
REMOTE_ROTARY_SHARE = 0.5  # remote code rotates the first half of each head


def kv_heads(config: Config, warn: Warn) -> int:
    """KV heads: the remote code groups them only with ``multi_query_attention`` set."""
    heads = hparam(config, warn, "num_attention_heads")
    if "multi_query_group_num" in config or "multi_query_attention" in config:
        if not value(config, "multi_query_attention", FLAG):
            return heads
        key = "multi_query_group_num"
        return grouped_heads(heads, hparam(config, warn, key), key)
    key = "num_key_value_heads"
    return grouped_heads(heads, hparam(config, warn, key, default=heads), key)


def shape(config: Config, warn: Warn) -> Shape:
    """Dimensions from either config layout (remote-code names first), each checked."""
    heads = hparam(config, warn, "num_attention_heads")
    hidden = hparam(config, warn, "hidden_size")
    return Shape(
        n_layers=hparam(config, warn, "num_layers", "num_hidden_layers"),
        hidden_size=hidden,
        ffn_size=hparam(config, warn, "ffn_hidden_size", "intermediate_size"),
        n_heads=heads,
        n_kv_heads=kv_heads(config, warn),
        head_dim=head_size(config, hidden, heads, "kv_channels", "head_dim"),
        vocab_size=hparam(config, warn, "padded_vocab_size", "vocab_size"),
        context_length=hparam(config, warn, "seq_length", "max_position_embeddings",
                              default=GLM_DEFAULT_CONTEXT),
    )


def rope_base(config: Config, warn: Warn) -> float:
    if (ratio := value(config, "rope_ratio", POSITIVE)) is not None:
        return GLM_ROPE_BASE * ratio  # remote code: base 10000 scaled by rope_ratio
    return float(hparam(rope(config), warn, "rope_theta", limit=POSITIVE, default=GLM_ROPE_BASE))


def metadata(config: Config, warn: Warn) -> dict[str, object]:
    """The chatglm keys from either config layout."""
    dims = shape(config, warn)
    partial = rope(config).get("partial_rotary_factor", REMOTE_ROTARY_SHARE)
    rotary = int(dims.head_dim * partial)
    if rotary < 2 or rotary % 2:
        raise LwlocalError(f"config.json: partial_rotary_factor {partial:g} leaves {rotary} of "
                           f"each head's {dims.head_dim} values to rotate; rope turns pairs")
    return {
        K.CONTEXT_LENGTH: dims.context_length,
        K.EMBEDDING_LENGTH: dims.hidden_size,
        K.FEED_FORWARD_LENGTH: dims.ffn_size,
        K.BLOCK_COUNT: dims.n_layers,
        A.HEAD_COUNT: dims.n_heads,
        A.HEAD_COUNT_KV: dims.n_kv_heads,
        A.LAYERNORM_RMS_EPS: hparam(config, warn, "layernorm_epsilon", "rms_norm_eps",
                                    limit=EPSILON, default=1e-5),
        R.DIMENSION_COUNT: rotary,
        R.FREQ_BASE: rope_base(config, warn),
    }
