"""The GLM-4 family (LongWriter-glm4-9b) -> GGUF architecture ``chatglm``, from THUDM's
remote-code layout (``ChatGLMForConditionalGeneration``) or transformers' native one
(``GlmForCausalLM``): their tensor tables, special tokens and cards.

Both rotate interleaved pairs of the first half of each head, which is llama.cpp's rope mode
for chatglm, so no rows are reordered; the fused QKV and gate/up tensors are kept fused.
"""

from __future__ import annotations

from dataclasses import replace

from lwlocal.families.base import Architecture, ModelCard
from lwlocal.families.glm_config import metadata, shape
from lwlocal.families.glm_native import join_gate_up, relayout
from lwlocal.families.transformers_decoder import ATTENTION_NAMES, LAYER, OUTER_NAMES, SKIP

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
# transformers' GLM-4: its decoder layout, with the gate and up projections fused
NATIVE_NAMES = OUTER_NAMES + ATTENTION_NAMES + (
    (LAYER + r"mlp\.gate_up_proj\.weight", "blk.{bid}.ffn_up.weight"),
    (LAYER + r"mlp\.down_proj\.weight", "blk.{bid}.ffn_down.weight"),
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
GLM_BPE_HASHES = {
    "b6e8e1518dc4305be2fe39c313ed643381c4da5db34a98f6a04c093f8afbe99b": "chatglm-bpe",
    "81d72c7348a9f0ebe86f23298d37debe0a5e71149e29bd283904c02262b27516": "chatglm-bpe",
    "a1336059768a55c99a734006ffb02203cd450fed003e9a71886c88acf24fdbc2": "glm4",
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
    bpe_hashes=GLM_BPE_HASHES,
    bpe_pre="chatglm-bpe",
    special_tokens=GLM_SPECIAL,
    tiktoken_specials=GLM_TIKTOKEN_SPECIALS,
    add_bos=False,
    native_relayout=relayout,
    gptq_join=join_gate_up,
)
GLM = replace(
    CHATGLM,
    name="glm",
    hf_architectures=("GlmForCausalLM",),
    names=NATIVE_NAMES,
    required=NATIVE_REQUIRED,
    skip=SKIP,
    native_relayout=None,
)
ARCHITECTURES = (CHATGLM, GLM)

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
