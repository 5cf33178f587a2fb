"""A checkpoint with the layout and sizes of a LongWriter model, for memory, time and speed work.

    python benchmarks/synth_checkpoint.py CARD OUT [--layers N]

CARD is a model card (`longwriter-glm4-9b`: THUDM's remote-code ChatGLM layout;
`longwriter-llama3.1-8b`: LlamaForCausalLM). The tensors have the card's shapes, in bf16, in
shards of at most 5 GB with a `model.safetensors.index.json`; `--layers N` keeps the widths with
fewer layers. The weights are zero and the shards sparse: written in seconds, taking no disk
until read, and converting and quantizing like real ones (memory and time do not depend on the
values). The tokenizer is byte-level BPE with the family's special tokens, which lwlocal's
converter pads to the card's vocabulary.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lwlocal.families.base import ModelCard  # noqa: E402
from lwlocal.models.catalogue import CARDS  # noqa: E402

SHARD_BYTES = 5 * 10**9
BF16 = 2
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
SPECIALS = {"llama": ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"],
            "chatglm": ["<|endoftext|>", "[MASK]", "[gMASK]", "[sMASK]", "<sop>", "<eop>",
                        "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>"]}


def tensors(card: ModelCard, layers: int) -> list[tuple[str, tuple[int, ...]]]:
    """HF tensor names and shapes of ``card``'s checkpoint, in file order."""
    e, f, v = card.hidden_size, card.ffn_size, card.vocab_size
    kv = card.n_kv_heads * card.head_dim
    out: list[tuple[str, tuple[int, ...]]] = []
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


def shards(named: list[tuple[str, tuple[int, ...]]]) -> list[list[tuple[str, tuple[int, ...]]]]:
    """Tensors grouped in file order into shards of at most ``SHARD_BYTES``."""
    groups: list[list[tuple[str, tuple[int, ...]]]] = [[]]
    size = 0
    for name, shape in named:
        n = BF16 * _count(shape)
        if groups[-1] and size + n > SHARD_BYTES:
            groups.append([])
            size = 0
        groups[-1].append((name, shape))
        size += n
    return groups


def _count(shape: tuple[int, ...]) -> int:
    total = 1
    for dim in shape:
        total *= dim
    return total


def write_shard(path: Path, named: list[tuple[str, tuple[int, ...]]]) -> int:
    """A safetensors file of zero bf16 tensors: the header, then a hole to the full size."""
    header, offset = {}, 0
    for name, shape in named:
        n = BF16 * _count(shape)
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(text)) + text)
        handle.truncate(8 + len(text) + offset)
    return offset


def tokenizer(folder: Path, card: ModelCard) -> None:
    """Byte-level BPE over the 256 bytes, one merge, and the family's special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    from lwlocal.convert.tokenizer import llama3_pre_tokenizer

    vocab = {c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    vocab["Ġt"] = len(vocab)
    tok = Tokenizer(models.BPE(vocab, [("Ġ", "t")]))
    tok.pre_tokenizer = llama3_pre_tokenizer()
    tok.decoder = decoders.ByteLevel()
    specials = SPECIALS[card.architecture]
    tok.add_special_tokens(specials)
    tok.save(str(folder / "tokenizer.json"))
    end = "<|eot_id|>" if card.architecture == "llama" else "<|endoftext|>"
    (folder / "tokenizer_config.json").write_text(json.dumps({"eos_token": end}))


def synthesize(card: ModelCard, out: Path, layers: int | None = None) -> Path:
    """Write ``card``'s checkpoint (``layers`` blocks, default all) into ``out``."""
    layers = card.n_layers if layers is None else layers
    out.mkdir(parents=True, exist_ok=True)
    groups = shards(tensors(card, layers))
    weight_map, total = {}, 0
    for i, named in enumerate(groups, 1):
        name = f"model-{i:05d}-of-{len(groups):05d}.safetensors"
        total += write_shard(out / name, named)
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
    args = parser.parse_args()
    folder = synthesize(CARDS[args.card], args.out, args.layers)
    print(folder)


if __name__ == "__main__":
    main()
