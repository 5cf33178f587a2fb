"""THUDM's remote-code GLM-4 checkpoint (``ChatGLMForConditionalGeneration``, LongWriter-glm4-9b's
layout) laid out again as transformers' native ``GlmForCausalLM``, so that it loads, quantizes
and serves without ``trust_remote_code``. The weights are the same numbers: the fused QKV
projection is split into q, k and v; the rest is renamed. Written shard by shard (with torch, the
``gptq`` extra's, which reads bf16). And the gate and up projections GPTQModel quantizes apart,
joined again into the one ``gate_up_proj`` transformers and vLLM load."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lwlocal.families.base import Config
from lwlocal.families.byte_bpe import (
    LLAMA3_PATTERN,
    byte_level_pre_tokenizer,
    byte_to_unicode,
    merges_of,
    read_ranks,
)
from lwlocal.families.glm_config import REMOTE_ROTARY_SHARE, rope_base, shape
from lwlocal.util.errors import LwlocalError

if TYPE_CHECKING:
    import torch

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


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "generation_config.json")  # copied when there is a tokenizer.json


def _native_tensors(name: str, value: torch.Tensor, q_rows: int, kv_rows: int
                    ) -> dict[str, torch.Tensor]:
    if name in NATIVE_OTHER_NAMES:
        return {NATIVE_OTHER_NAMES[name]: value}
    if not name.startswith(REMOTE_LAYER_PREFIX):
        return {}  # e.g. rotary_pos_emb.inv_freq: computed from the config
    index, rest = name[len(REMOTE_LAYER_PREFIX):].split(".", 1)
    prefix = f"model.layers.{index}."
    if rest.startswith(REMOTE_QKV):
        kind = rest.rsplit(".", 1)[1]
        q, k, v = value.split([q_rows, kv_rows, kv_rows])
        return {f"{prefix}self_attn.{p}_proj.{kind}": part
                for p, part in zip("qkv", (q, k, v), strict=True)}
    if rest not in NATIVE_LAYER_NAMES:
        raise LwlocalError(f"{name}: a tensor the GLM-4 layout does not have")
    return {prefix + NATIVE_LAYER_NAMES[rest]: value}


def relayout(src: Path, dst: Path) -> Path:
    """Write ``src`` (remote-code ChatGLM) to ``dst`` as a native GlmForCausalLM checkpoint."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    config = json.loads((src / "config.json").read_text(encoding="utf-8"))
    native = native_config(config)
    q_rows = native["num_attention_heads"] * native["head_dim"]
    kv_rows = native["num_key_value_heads"] * native["head_dim"]
    shards = sorted(src.glob("*.safetensors"))
    if not shards:
        raise LwlocalError(f"{src}: no .safetensors files")
    dst.mkdir(parents=True, exist_ok=True)
    weight_map = {}
    for number, shard in enumerate(shards, 1):
        out_name = f"model-{number:05d}-of-{len(shards):05d}.safetensors"
        tensors: dict[str, torch.Tensor] = {}
        with safe_open(str(shard), framework="pt") as source:
            for name in source.keys():  # noqa: SIM118 - safe_open has no __iter__
                tensors.update(_native_tensors(name, source.get_tensor(name), q_rows, kv_rows))
        save_file({k: v.contiguous() for k, v in tensors.items()},
                  str(dst / out_name), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(tensors, out_name))
    (dst / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": weight_map}, indent=1))
    (dst / "config.json").write_text(json.dumps(native, indent=1))
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copy(src / name, dst / name)
    if not (src / "tokenizer.json").is_file():
        fast_tokenizer(src, dst)
    return dst


def fast_tokenizer(src: Path, dst: Path) -> None:
    """GLM-4's tiktoken ``tokenizer.model`` (remote code: ChatGLM4Tokenizer) as a
    ``tokenizer.json`` that transformers loads without remote code and that tokenizes as
    tiktoken does: byte-level BPE over the ranks (tiktoken's whole-word lookup kept with
    ``ignore_merges``), GLM-4's split pattern, its special tokens at their ids, and the
    ``[gMASK]<sop>`` prefix ChatGLM4Tokenizer adds."""
    from tokenizers import AddedToken, Tokenizer, decoders, models
    from tokenizers.processors import TemplateProcessing

    ranks = read_ranks(src / "tokenizer.model")
    to_text = byte_to_unicode()

    def text(token: bytes) -> str:
        return "".join(to_text[b] for b in token)

    config_path = src / "tokenizer_config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        added = {int(i): e["content"] for i, e in config.get("added_tokens_decoder", {}).items()}
    except (OSError, ValueError, KeyError) as exc:
        raise LwlocalError(f"{config_path}: needed for the special tokens ({exc})") from exc
    vocab = {text(token): rank for token, rank in ranks.items()}
    vocab.update({content: token_id for token_id, content in added.items()})
    tokenizer = Tokenizer(models.BPE(
        vocab=vocab, merges=[(text(a), text(b)) for a, b in merges_of(ranks)],
        ignore_merges=True))
    tokenizer.pre_tokenizer = byte_level_pre_tokenizer(LLAMA3_PATTERN)
    tokenizer.decoder = decoders.ByteLevel()
    for token_id in sorted(added):
        tokenizer.add_special_tokens([AddedToken(added[token_id], special=True,
                                                 normalized=False)])
        if tokenizer.token_to_id(added[token_id]) != token_id:
            raise LwlocalError(f"{config_path}: special token {added[token_id]!r} clashes "
                               f"with a token of tokenizer.model (id {token_id})")
    ids = {content: i for i, content in added.items()}
    if "[gMASK]" in ids and "<sop>" in ids:
        tokenizer.post_processor = TemplateProcessing(
            single="[gMASK]:0 <sop>:0 $A:0", pair="[gMASK]:0 <sop>:0 $A:0 $B:1",
            special_tokens=[("[gMASK]", ids["[gMASK]"]), ("<sop>", ids["<sop>"])])
    tokenizer.save(str(dst / "tokenizer.json"))
    eos = config.get("eos_token") or "<|endoftext|>"
    fast_config = {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": eos,
                   "pad_token": config.get("pad_token") or eos,
                   "clean_up_tokenization_spaces": False,
                   "model_max_length": config.get("model_max_length", 131072)}
    if config.get("chat_template"):
        fast_config["chat_template"] = config["chat_template"]
    (dst / "tokenizer_config.json").write_text(json.dumps(fast_config, indent=1))


def join_gate_up(folder: Path) -> None:
    """Join GLM's separately quantized gate and up projections into ``gate_up_proj`` (gate
    first): GPTQ's packed tensors are per output column, so side by side is exact."""
    import torch
    from safetensors.torch import load_file, save_file

    for path in sorted(folder.glob("*.safetensors")):
        tensors = load_file(str(path))
        gates = [k[: -len(".gate_proj.qweight")] for k in tensors
                 if k.endswith(".gate_proj.qweight")]
        for prefix in gates:
            gate, up = f"{prefix}.gate_proj", f"{prefix}.up_proj"
            for part in ("qweight", "qzeros", "scales"):
                tensors[f"{prefix}.gate_up_proj.{part}"] = torch.cat(
                    [tensors.pop(f"{gate}.{part}"), tensors.pop(f"{up}.{part}")], dim=1)
            tensors[f"{prefix}.gate_up_proj.g_idx"] = tensors.pop(f"{gate}.g_idx")
            tensors.pop(f"{up}.g_idx")
        if gates:
            save_file({k: v.contiguous() for k, v in tensors.items()}, str(path),
                      metadata={"format": "pt"})
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        data = json.loads(index.read_text())
        data["weight_map"] = {
            k.replace(".gate_proj.", ".gate_up_proj."): v
            for k, v in data["weight_map"].items() if ".up_proj." not in k}
        index.write_text(json.dumps(data, indent=1))
