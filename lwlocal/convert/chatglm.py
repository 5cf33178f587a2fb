"""GLM-4 (LongWriter-glm4-9b) -> GGUF architecture ``chatglm``, from THUDM's remote-code layout
(``ChatGLMForConditionalGeneration``) or transformers' native one (``GlmForCausalLM``).

Both rotate interleaved pairs of the first half of each head, which is llama.cpp's rope mode
for chatglm, so no rows are reordered; the fused QKV and gate/up tensors are kept fused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from lwlocal.convert.architecture import Architecture, Config, hparam, rope

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
GLM_DEFAULT_CONTEXT = 8192  # GLM-4-9B's base context
GLM_ROPE_BASE = 10000.0


def metadata(config: Config, warn: Callable[[str], None]) -> dict[str, object]:
    """The chatglm keys from either config layout (remote-code names first)."""
    heads = config["num_attention_heads"]
    hidden = config["hidden_size"]
    head_dim = config.get("kv_channels") or config.get("head_dim") or hidden // heads
    params = rope(config)
    if config.get("rope_ratio") is not None:  # remote code: base 10000 scaled by rope_ratio
        freq_base = GLM_ROPE_BASE * float(config["rope_ratio"])
    else:
        freq_base = float(hparam(params, warn, "rope_theta", default=GLM_ROPE_BASE))
    partial = params.get("partial_rotary_factor", 0.5)  # remote code rotates half the head
    return {
        "context_length": hparam(config, warn, "seq_length", "max_position_embeddings",
                                 default=GLM_DEFAULT_CONTEXT),
        "embedding_length": hidden,
        "feed_forward_length": hparam(config, warn, "ffn_hidden_size", "intermediate_size"),
        "block_count": hparam(config, warn, "num_layers", "num_hidden_layers"),
        "attention.head_count": heads,
        "attention.head_count_kv": hparam(config, warn, "multi_query_group_num",
                                          "num_key_value_heads", default=heads),
        "attention.layer_norm_rms_epsilon": float(
            hparam(config, warn, "layernorm_epsilon", "rms_norm_eps", default=1e-5)),
        "rope.dimension_count": int(head_dim * partial),
        "rope.freq_base": freq_base,
    }


GLM_SPECIAL = {"eos": "<|endoftext|>", "eot": "<|user|>", "unk": "<|endoftext|>"}
CHATGLM = Architecture(
    gguf_arch="chatglm",
    hf_architectures=("ChatGLMModel", "ChatGLMForConditionalGeneration"),
    names=REMOTE_NAMES,
    skip=(r"transformer\.rotary_pos_emb\.inv_freq",),
    metadata=metadata,
    bpe_pre="chatglm-bpe",
    special_tokens=GLM_SPECIAL,
    add_bos=False,
)
GLM = replace(
    CHATGLM,
    hf_architectures=("GlmForCausalLM",),
    names=NATIVE_NAMES,
    skip=(NATIVE_LAYER + r"self_attn\.rotary_emb\.inv_freq",),
)
