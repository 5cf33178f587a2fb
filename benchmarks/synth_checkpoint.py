"""A checkpoint with the layout and sizes of a LongWriter model, for memory, time and speed work.

    python benchmarks/synth_checkpoint.py CARD OUT [--layers N] [--zeros]

CARD is a model card (`longwriter-glm4-9b`: THUDM's remote-code ChatGLM layout;
`longwriter-llama3.1-8b`: LlamaForCausalLM). The tensors have the card's shapes, in bf16, in
shards of at most 5 GB (transformers' default split: four shards for both; LongWriter-glm4-9b's
published ones, as a mirror lists them, are 4.6, 4.6, 4.6 and 3.7 GiB, and so are these) with a
`model.safetensors.index.json`; `--layers N` keeps the widths with fewer
layers. The values are random bf16 numbers of magnitude 2^-9 to 1 (random bits with a bounded
exponent, written a chunk at a time: a full-size checkpoint in minutes, at the disk's speed);
`--zeros` leaves them zero in sparse shards, written at once and taking no disk until read.

The tokenizer has the real vocabulary's size and special tokens: GLM-4's tiktoken
`tokenizer.model` (151,329 ranked tokens; the 14 special tokens, which its tokenizer code
numbers from 151,329, not listed in `tokenizer_config.json`) or Llama 3's `tokenizer.json`
(128,000 BPE tokens and 256 special ones). Its tokens are made, deterministically, so that BPE
over lower ranks rebuilds each one from exactly one pair, as in a trained vocabulary, so that
the merges can be recovered.
"""

from __future__ import annotations

import argparse
import base64
import json
import struct
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lwlocal.families.base import ModelCard  # noqa: E402
from lwlocal.families.glm import GLM_TIKTOKEN_SPECIALS  # noqa: E402
from lwlocal.models.catalogue import CARDS  # noqa: E402

SHARD_BYTES = 5 * 10**9
BF16 = 2
CHUNK_VALUES = 32 * 2**20  # values generated and written at a time (64 MB)
# Configuration values the converter reads that the cards do not hold, as the two models
# publish them.
LLAMA_CONFIG = {"rms_norm_eps": 1e-5, "rope_theta": 500000.0, "tie_word_embeddings": False,
                "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                 "high_freq_factor": 4.0,
                                 "original_max_position_embeddings": 8192},
                "bos_token_id": 128000, "eos_token_id": 128001}
GLM_CONFIG = {"layernorm_epsilon": 1.5625e-07, "rope_ratio": 500, "add_qkv_bias": True,
              "add_bias_linear": False, "multi_query_attention": True, "rmsnorm": True,
              "apply_residual_connection_post_layernorm": False, "post_layer_norm": True,
              "eos_token_id": [151329, 151336, 151338], "pad_token_id": 151329}
# The tokenizers: ordinary tokens, then the special ones, as the two models ship them.
ORDINARY = {"chatglm": 151329, "llama": 128000}
LLAMA_NAMED = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
               "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>",
               "<|reserved_special_token_2|>", "<|start_header_id|>", "<|end_header_id|>",
               "<|eom_id|>", "<|eot_id|>", "<|python_tag|>"]
LLAMA_SPECIALS = LLAMA_NAMED + [f"<|reserved_special_token_{i}|>"
                                for i in range(3, 256 - len(LLAMA_NAMED) + 3)]
SPECIALS = {"chatglm": list(GLM_TIKTOKEN_SPECIALS), "llama": LLAMA_SPECIALS}
END = {"chatglm": "<|endoftext|>", "llama": "<|end_of_text|>"}
LEVEL_SIZES = (16384, 80000)  # tokens of 2 and 4 bytes; the rest are 8 bytes

Named = list[tuple[str, tuple[int, ...]]]


def tensors(card: ModelCard, layers: int) -> Named:
    """HF tensor names and shapes of ``card``'s checkpoint, in file order."""
    e, f, v = card.hidden_size, card.ffn_size, card.vocab_size
    kv = card.n_kv_heads * card.head_dim
    out: Named = []
    if card.architecture == "chatglm":
        out.append(("transformer.embedding.word_embeddings.weight", (v, e)))
        for i in range(layers):
            p = f"transformer.encoder.layers.{i}."
            out += [(p + "input_layernorm.weight", (e,)),
                    (p + "self_attention.query_key_value.weight", (e + 2 * kv, e)),
                    (p + "self_attention.query_key_value.bias", (e + 2 * kv,)),
                    (p + "self_attention.dense.weight", (e, e)),
                    (p + "post_attention_layernorm.weight", (e,)),
                    (p + "mlp.dense_h_to_4h.weight", (2 * f, e)),
                    (p + "mlp.dense_4h_to_h.weight", (e, f))]
        return out + [("transformer.encoder.final_layernorm.weight", (e,)),
                      ("transformer.output_layer.weight", (v, e))]
    out.append(("model.embed_tokens.weight", (v, e)))
    for i in range(layers):
        p = f"model.layers.{i}."
        out += [(p + "input_layernorm.weight", (e,)),
                (p + "self_attn.q_proj.weight", (e, e)), (p + "self_attn.k_proj.weight", (kv, e)),
                (p + "self_attn.v_proj.weight", (kv, e)), (p + "self_attn.o_proj.weight", (e, e)),
                (p + "post_attention_layernorm.weight", (e,)),
                (p + "mlp.gate_proj.weight", (f, e)), (p + "mlp.up_proj.weight", (f, e)),
                (p + "mlp.down_proj.weight", (e, f))]
    return out + [("model.norm.weight", (e,)), ("lm_head.weight", (v, e))]


def config(card: ModelCard, layers: int) -> dict[str, object]:
    if card.architecture == "chatglm":
        return {"architectures": [card.hf_architecture], "model_type": "chatglm",
                "num_layers": layers, "hidden_size": card.hidden_size,
                "ffn_hidden_size": card.ffn_size, "kv_channels": card.head_dim,
                "num_attention_heads": card.n_heads, "multi_query_group_num": card.n_kv_heads,
                "seq_length": card.config_context, "padded_vocab_size": card.vocab_size,
                "torch_dtype": "bfloat16", **GLM_CONFIG}
    return {"architectures": [card.hf_architecture], "model_type": "llama",
            "num_hidden_layers": layers, "hidden_size": card.hidden_size,
            "intermediate_size": card.ffn_size, "num_attention_heads": card.n_heads,
            "num_key_value_heads": card.n_kv_heads, "head_dim": card.head_dim,
            "max_position_embeddings": card.config_context, "vocab_size": card.vocab_size,
            "torch_dtype": "bfloat16", **LLAMA_CONFIG}


def shards(named: Named) -> list[Named]:
    """Tensors grouped in file order into shards of at most ``SHARD_BYTES``."""
    groups: list[Named] = [[]]
    size = 0
    for name, shape in named:
        n = BF16 * int(np.prod(shape))
        if groups[-1] and size + n > SHARD_BYTES:
            groups.append([])
            size = 0
        groups[-1].append((name, shape))
        size += n
    return groups


def random_bf16(rng: np.random.Generator, count: int) -> np.ndarray:
    """``count`` random bf16 values (as uint16): random sign and mantissa, exponents giving
    magnitudes from 2^-9 to 1, so that f16 holds them all."""
    bits = np.frombuffer(rng.bytes(BF16 * count), dtype=np.uint16)
    exponent = np.uint16(118) + ((bits >> 7) & np.uint16(7))  # biased: 2^-9 .. 2^-2
    return (bits & np.uint16(0x807F)) | (exponent << 7)


def write_shard(path: Path, named: Named, rng: np.random.Generator | None) -> int:
    """A safetensors file of bf16 tensors, random a chunk at a time, or (no ``rng``) zero: the
    header, then a hole to the full size."""
    header, offset = {}, 0
    for name, shape in named:
        n = BF16 * int(np.prod(shape))
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(text)) + text)
        if rng is None:
            handle.truncate(8 + len(text) + offset)
            return offset
        for left in range(offset // BF16, 0, -CHUNK_VALUES):
            random_bf16(rng, min(left, CHUNK_VALUES)).tofile(handle)
    return offset


def vocabulary(size: int) -> list[bytes]:
    """``size`` distinct tokens: the 256 bytes, then 2-, 4- and 8-byte tokens, each the join of
    a *left* and a *right* token of the level below (alternate tokens of each level), so that
    BPE over lower ranks joins each token's halves and nothing across them."""
    rng = np.random.default_rng(0)
    levels = [[bytes([b]) for b in range(256)]]
    tokens = list(levels[0])
    for wanted in (*LEVEL_SIZES, size):
        below = levels[-1]
        left, right = below[0::2], below[1::2]
        count = min(wanted, size - len(tokens), len(left) * len(right))
        picks = rng.choice(len(left) * len(right), size=count, replace=False)
        level = [left[i // len(right)] + right[i % len(right)] for i in picks.tolist()]
        levels.append(level)
        tokens += level
    assert len(tokens) == size, "the levels hold too few tokens"
    return tokens


def tiktoken_tokenizer(folder: Path, ranks: list[bytes]) -> None:
    """GLM-4's files: ``tokenizer.model`` (``base64 rank`` lines) and a
    ``tokenizer_config.json`` without the special tokens, as LongWriter-glm4-9b's (843 bytes:
    too small to list 14 of them; its tokenizer's code numbers them after the ranks)."""
    (folder / "tokenizer.model").write_text("".join(
        f"{base64.b64encode(token).decode()} {rank}\n" for rank, token in enumerate(ranks)))
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"auto_map": {"AutoTokenizer": ["tokenization_chatglm.ChatGLM4Tokenizer", None]},
         "clean_up_tokenization_spaces": False, "do_lower_case": False,
         "eos_token": END["chatglm"], "pad_token": END["chatglm"], "padding_side": "left",
         "remove_space": False, "tokenizer_class": "ChatGLM4Tokenizer"}, indent=2))


def bpe_tokenizer(folder: Path, ranks: list[bytes], specials: list[str]) -> None:
    """Llama 3's files: a byte-level BPE ``tokenizer.json`` with Llama 3's split, the merge of
    each multi-byte token, and the special tokens after the ranks."""
    from tokenizers import Tokenizer, decoders, models

    from lwlocal.families.byte_bpe import (
        LLAMA3_PATTERN,
        byte_level_pre_tokenizer,
        byte_to_unicode,
        merges_of,
    )

    to_text = byte_to_unicode()

    def text(token: bytes) -> str:
        return "".join(to_text[b] for b in token)

    by_rank = {token: rank for rank, token in enumerate(ranks)}
    merges = [(text(a), text(b)) for a, b in merges_of(by_rank)]
    tok = Tokenizer(models.BPE({text(t): i for i, t in enumerate(ranks)}, merges))
    tok.pre_tokenizer = byte_level_pre_tokenizer(LLAMA3_PATTERN)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(specials)
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"bos_token": specials[0], "eos_token": END["llama"],
         "tokenizer_class": "PreTrainedTokenizerFast"}, indent=2))


def tokenizer(folder: Path, card: ModelCard) -> None:
    """The card's tokenizer files, of the real vocabulary's size and special tokens."""
    ranks = vocabulary(ORDINARY[card.architecture])
    if card.architecture == "chatglm":
        tiktoken_tokenizer(folder, ranks)
    else:
        bpe_tokenizer(folder, ranks, SPECIALS["llama"])


def synthesize(card: ModelCard, out: Path, layers: int | None = None, zeros: bool = False,
               seed: int = 0) -> Path:
    """Write ``card``'s checkpoint (``layers`` blocks, default all) into ``out``: random bf16
    values, or zeros in sparse files."""
    layers = card.n_layers if layers is None else layers
    out.mkdir(parents=True, exist_ok=True)
    rng = None if zeros else np.random.default_rng(seed)
    groups = shards(tensors(card, layers))
    weight_map: dict[str, str] = {}
    total = 0
    for i, named in enumerate(groups, 1):
        name = f"model-{i:05d}-of-{len(groups):05d}.safetensors"
        total += write_shard(out / name, named, rng)
        weight_map |= {tensor: name for tensor, _ in named}
    (out / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": total}, "weight_map": weight_map}, indent=1))
    (out / "config.json").write_text(json.dumps(config(card, layers), indent=1))
    tokenizer(out, card)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("card", choices=[c for c in CARDS if c.startswith("longwriter")])
    parser.add_argument("out", type=Path)
    parser.add_argument("--layers", type=int, help="blocks to write (default: all)")
    parser.add_argument("--zeros", action="store_true", help="zero weights in sparse files")
    args = parser.parse_args()
    folder = synthesize(CARDS[args.card], args.out, args.layers, args.zeros)
    print(folder)


if __name__ == "__main__":
    main()
