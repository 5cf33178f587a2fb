"""The GLM-4 family (LongWriter-glm4-9b) -> GGUF architecture ``chatglm``, from THUDM's
remote-code layout (``ChatGLMForConditionalGeneration``) or transformers' native one
(``GlmForCausalLM``), and the table between the two.

Both rotate interleaved pairs of the first half of each head, which is llama.cpp's rope mode
for chatglm, so no rows are reordered; the fused QKV and gate/up tensors are kept fused.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from gguf import Keys

from lwlocal.families.base import (
    EPSILON,
    FLAG,
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
    value,
)
from lwlocal.util.errors import LwlocalError

K, A, R = Keys.LLM, Keys.Attention, Keys.Rope

REMOTE_LAYER = r"transformer\.encoder\.layers\.(?P<bid>\d+)\."
REMOTE_NAMES = (
    (r"transformer\.embedding\.word_embeddings\.weight", "token_embd.weight"),
    (r"transformer\.encoder\.final_layernorm\.weight", "output_norm.weight"),
    (r"transformer\.output_layer\.weight", "output.weight"),
    (REMOTE_LAYER + r"input_layernorm\.weight", "blk.{bid}.attn_norm.weight"),
    (REMOTE_LAYER + r"self_attention\.query_key_value\.(?P<kind>weight|bias)",
     "blk.{bid}.attn_qkv.{kind}"),
    (REMOTE_LAYER + r"self_attention\.dense\.weight", "blk.{bid}.attn_output.weight"),
    (REMOTE_LAYER + r"post_attention_layernorm\.weight", "blk.{bid}.ffn_norm.weight"),
    (REMOTE_LAYER + r"mlp\.dense_h_to_4h\.weight", "blk.{bid}.ffn_up.weight"),
    (REMOTE_LAYER + r"mlp\.dense_4h_to_h\.weight", "blk.{bid}.ffn_down.weight"),
)
NATIVE_LAYER = r"model\.layers\.(?P<bid>\d+)\."
NATIVE_NAMES = (
    (r"model\.embed_tokens\.weight", "token_embd.weight"),
    (r"model\.norm\.weight", "output_norm.weight"),
    (r"lm_head\.weight", "output.weight"),
    (NATIVE_LAYER + r"input_layernorm\.weight", "blk.{bid}.attn_norm.weight"),
    (NATIVE_LAYER + r"self_attn\.(?P<p>[qkv])_proj\.(?P<kind>weight|bias)",
     "blk.{bid}.attn_{p}.{kind}"),
    (NATIVE_LAYER + r"self_attn\.o_proj\.weight", "blk.{bid}.attn_output.weight"),
    (NATIVE_LAYER + r"post_attention_layernorm\.weight", "blk.{bid}.ffn_norm.weight"),
    (NATIVE_LAYER + r"mlp\.gate_up_proj\.weight", "blk.{bid}.ffn_up.weight"),
    (NATIVE_LAYER + r"mlp\.down_proj\.weight", "blk.{bid}.ffn_down.weight"),
)
# every GLM-4 checkpoint has these (the output, fused QKV and its bias may be left out)
REMOTE_REQUIRED = ("token_embd.weight", "output_norm.weight", "blk.{bid}.attn_norm.weight",
                   "blk.{bid}.attn_qkv.weight", "blk.{bid}.attn_output.weight",
                   "blk.{bid}.ffn_norm.weight", "blk.{bid}.ffn_up.weight",
                   "blk.{bid}.ffn_down.weight")
NATIVE_REQUIRED = tuple(name for name in REMOTE_REQUIRED if "attn_qkv" not in name) + (
    "blk.{bid}.attn_q.weight", "blk.{bid}.attn_k.weight", "blk.{bid}.attn_v.weight")
FUSED_GATE_UP: dict[str, tuple[str, ...]] = {
    "blk.{bid}.ffn_up.weight": ("gate_up_size", "hidden_size")}
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


GLM_SPECIAL = {"eos": "<|endoftext|>", "eot": "<|user|>", "unk": "<|endoftext|>"}
# GLM-4's tiktoken tokenizer (tokenization_chatglm.py's ChatGLM4Tokenizer) numbers these after
# the ranks of tokenizer.model, whether or not tokenizer_config.json lists them
GLM_TIKTOKEN_SPECIALS = ("<|endoftext|>", "[MASK]", "[gMASK]", "[sMASK]", "<sop>", "<eop>",
                         "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>",
                         "<|begin_of_image|>", "<|end_of_image|>", "<|begin_of_video|>",
                         "<|end_of_video|>")
CHATGLM = Architecture(
    name="chatglm",
    gguf_arch="chatglm",
    hf_architectures=("ChatGLMModel", "ChatGLMForConditionalGeneration"),
    names=REMOTE_NAMES,
    required=REMOTE_REQUIRED,
    shapes=FUSED_GATE_UP,
    skip=(r"transformer\.rotary_pos_emb\.inv_freq",),
    shape=shape,
    metadata=metadata,
    bpe_pre="chatglm-bpe",
    special_tokens=GLM_SPECIAL,
    tiktoken_specials=GLM_TIKTOKEN_SPECIALS,
    add_bos=False,
    remote_code=True,
    fused_gate_up=True,
)
GLM = replace(
    CHATGLM,
    name="glm",
    hf_architectures=("GlmForCausalLM",),
    names=NATIVE_NAMES,
    required=NATIVE_REQUIRED,
    skip=(NATIVE_LAYER + r"self_attn\.rotary_emb\.inv_freq",),
    remote_code=False,
)
ARCHITECTURES = (CHATGLM, GLM)

# The remote-code layout laid out natively (for transformers and GPTQ without remote code):
# tensor names after ``transformer.encoder.layers.N.`` and outside the layers; the fused QKV
# projection is split into q, k and v.
REMOTE_LAYER_PREFIX = "transformer.encoder.layers."
REMOTE_QKV = "self_attention.query_key_value."
NATIVE_LAYER_NAMES = {
    "self_attention.dense.weight": "self_attn.o_proj.weight",
    "input_layernorm.weight": "input_layernorm.weight",
    "post_attention_layernorm.weight": "post_attention_layernorm.weight",
    "mlp.dense_h_to_4h.weight": "mlp.gate_up_proj.weight",
    "mlp.dense_4h_to_h.weight": "mlp.down_proj.weight",
}
NATIVE_OTHER_NAMES = {
    "transformer.embedding.word_embeddings.weight": "model.embed_tokens.weight",
    "transformer.encoder.final_layernorm.weight": "model.norm.weight",
    "transformer.output_layer.weight": "lm_head.weight",
}


def native_config(config: Config) -> dict[str, Any]:
    """GlmForCausalLM's config.json for a remote-code ChatGLM config."""
    dims = shape(config, lambda _: None)
    eos = config.get("eos_token_id")
    eos = [eos] if isinstance(eos, int) else eos
    theta = rope_base(config, lambda _: None)
    return {
        "architectures": ["GlmForCausalLM"], "model_type": "glm",
        "vocab_size": dims.vocab_size, "hidden_size": dims.hidden_size,
        "intermediate_size": dims.ffn_size,
        "num_hidden_layers": dims.n_layers, "num_attention_heads": dims.n_heads,
        "num_key_value_heads": dims.n_kv_heads, "head_dim": dims.head_dim,
        "attention_bias": bool(config.get("add_qkv_bias", False)),
        "max_position_embeddings": dims.context_length,
        "rms_norm_eps": config.get("layernorm_epsilon", 1e-5),
        "rope_theta": theta,
        "partial_rotary_factor": REMOTE_ROTARY_SHARE, "hidden_act": "silu",
        "rope_parameters": {"rope_type": "default", "partial_rotary_factor": REMOTE_ROTARY_SHARE,
                            "rope_theta": theta},
        "tie_word_embeddings": False, "eos_token_id": eos,
        "pad_token_id": config.get("pad_token_id", eos[0] if eos else 0),
        "torch_dtype": config.get("torch_dtype", "bfloat16"),
    }


CARDS = (
    ModelCard(
        name="longwriter-glm4-9b",
        hub_id="THUDM/LongWriter-glm4-9b",
        architecture="chatglm",
        hf_architecture="ChatGLMForConditionalGeneration",
        n_layers=40,
        n_heads=32,
        n_kv_heads=2,  # multi_query_group_num
        head_dim=128,  # kv_channels
        hidden_size=4096,
        ffn_size=13696,
        vocab_size=151552,  # padded_vocab_size
        context_length=32768,  # LongWriter's training max_length
        config_context=1048576,  # seq_length (rope_ratio 500)
        n_params=9.40e9,
        prompt_format="glm4",
        license="glm-4-9b license",
        description="LongWriter on GLM-4-9B: 10,000+ words in one answer",
    ),
)
