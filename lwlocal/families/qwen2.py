"""The Qwen2 family: Qwen2ForCausalLM (Qwen1.5, Qwen2, Qwen2.5) -> GGUF ``qwen2``.

transformers' decoder layout with biases on q, k and v; its rope turns the two halves of each
head, which is llama.cpp's rope mode for qwen2, so no rows are reordered. Its pre-tokenizer
splits digits one by one."""

from __future__ import annotations

from lwlocal.families.base import FLAG, Architecture, Config, Warn, value
from lwlocal.families.transformers_decoder import NAMES, REQUIRED, SKIP, metadata, shape

QWEN2_SPLIT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+"
# The whole split pattern of Qwen2's pre-tokenizer (llama.cpp's ``qwen2``).
QWEN2_PATTERN = QWEN2_SPLIT + r"[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2_BPE_HASHES = {
    "e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea": "qwen2",  # Qwen1.5, 2
}
BIASES = ("blk.{bid}.attn_q.bias", "blk.{bid}.attn_k.bias", "blk.{bid}.attn_v.bias")


def qwen2_metadata(config: Config, warn: Warn) -> dict[str, object]:
    """The decoder's keys; llama.cpp's qwen2 attends to the whole context in every layer."""
    if value(config, "use_sliding_window", FLAG):
        warn("use_sliding_window is not converted: llama.cpp's qwen2 attends to the whole "
             "context in every layer")
    return metadata(config, warn)


QWEN2 = Architecture(
    name="qwen2",
    gguf_arch="qwen2",
    hf_architectures=("Qwen2ForCausalLM",),
    names=NAMES,
    required=REQUIRED + BIASES,
    skip=SKIP,
    shape=shape,
    metadata=qwen2_metadata,
    bpe_hashes=QWEN2_BPE_HASHES,
    bpe_pre="qwen2",
    bpe_split=QWEN2_SPLIT,
    add_bos=False,  # Qwen2's tokenizer has no beginning-of-text token
)
ARCHITECTURES = (QWEN2,)
CARDS = ()
