"""Tiny checkpoints in the LongWriter layouts, made offline for converter, GPTQ and hub tests:
random weights (sharpened so that every part matters), small trained BPE tokenizers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lwlocal.families.byte_bpe import LLAMA3_PATTERN
from lwlocal.families.qwen2 import QWEN2_PATTERN

CORPUS = [
    "The quick brown fox jumps over the lazy dog. It's 2024, isn't it?",
    "我想在apple工作1314151天～ 长文本生成",
    "def f(x):\n    return x ** 2  # square\n\n\n",
    "Numbers 3 33 333 3333 and emoji 🚀🦙 and    runs   of spaces\t\ttabs",
    "<|begin_of_text|>special<|eot_id|> tokens",
]
# Long enough that positions reach the scaled rope frequencies (original context 64).
PROMPTS = [[1, 5, 9, 200, 31, 7], [(i * 37) % 600 for i in range(60)], [42] * 40]
LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]
QWEN2_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
GLM_SPECIALS = ["<|endoftext|>", "[MASK]", "[gMASK]", "[sMASK]", "<sop>", "<eop>", "<|system|>",
                "<|user|>", "<|assistant|>", "<|observation|>"]
GLM_TEMPLATE = ("[gMASK]<sop>{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}"
                "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")


def bpe_tokenizer(folder: Path, specials: list[str], config: dict,
                  pattern: str = LLAMA3_PATTERN) -> None:
    """A small byte-level BPE splitting by ``pattern``: Llama 3's by default (GLM-4 uses the
    same split)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from lwlocal.families.byte_bpe import byte_level_pre_tokenizer

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = byte_level_pre_tokenizer(pattern)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS * 20, trainer)
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps(config))


def make_tiny_llama(folder: Path) -> Path:
    """LongWriter-llama3.1-8b's layout (llama3 rope scaling) at toy size, in ``folder``."""
    bpe_tokenizer(folder, LLAMA3_SPECIALS, {
        "bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>",
        "chat_template": "{% for m in messages %}[INST]{{ m['content'] }}[/INST]{% endfor %}",
    })
    import torch
    import transformers

    config = transformers.LlamaConfig(
        vocab_size=640, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        rms_norm_eps=1e-5, tie_word_embeddings=False, bos_token_id=0, eos_token_id=2,
        rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                         "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 64},
    )
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config).eval()
    sharpen(model)
    model.save_pretrained(folder)
    return folder


def make_tiny_qwen2(folder: Path) -> Path:
    """Qwen2's layout (q/k/v biases, Qwen2's split of digits one by one) at toy size, in
    ``folder``."""
    bpe_tokenizer(folder, QWEN2_SPECIALS, {"eos_token": "<|im_end|>", "chat_template": (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
        "{% endfor %}")}, QWEN2_PATTERN)
    import torch
    import transformers

    config = transformers.Qwen2Config(
        vocab_size=640, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        rms_norm_eps=1e-6, tie_word_embeddings=False, use_sliding_window=False, bos_token_id=None,
        eos_token_id=2, rope_parameters={"rope_type": "default", "rope_theta": 1e6})
    torch.manual_seed(2)
    model = transformers.Qwen2ForCausalLM(config).eval()
    sharpen(model)
    model.save_pretrained(folder)
    return folder


def sharpen(model) -> None:
    """Random weights large enough that every part matters: sharp attention makes rope (the
    positions) visible in the logits."""
    import torch

    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(0, 0.6 if ("q_proj" in name or "k_proj" in name) else 0.08)


def make_layers_matter(model, seed: int) -> None:
    """Weights whose layers matter to the logits (unit norms, variance-keeping projections,
    sharp attention), drawn with ``seed``: random tiny models are otherwise dominated by their
    embeddings, and a broken quant would not show."""
    import torch

    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.fill_(1.0)
            elif "embed" in name:
                p.normal_(0, 1.0)
            elif p.dim() == 1:
                p.normal_(0, 0.1)
            else:
                sharp = 2.0 if ("q_proj" in name or "k_proj" in name) else 1.0
                p.normal_(0, sharp / p.shape[1] ** 0.5)


def hf_logits(folder: Path, ids: list[int]) -> np.ndarray:
    import torch
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].numpy()


def make_tiny_glm(folder: Path) -> Path:
    """transformers' native GLM-4 layout (GlmForCausalLM) at toy size, in ``folder``."""
    bpe_tokenizer(folder, GLM_SPECIALS, {"eos_token": "<|endoftext|>",
                                         "chat_template": GLM_TEMPLATE})
    import torch
    import transformers

    config = transformers.GlmConfig(
        vocab_size=640, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, attention_bias=True,
        max_position_embeddings=4096, rms_norm_eps=1.5625e-07, tie_word_embeddings=False,
        pad_token_id=0, eos_token_id=0, bos_token_id=None,
        rope_parameters={"rope_type": "default", "rope_theta": 5e6, "partial_rotary_factor": 0.5},
    )
    torch.manual_seed(1)
    model = transformers.GlmForCausalLM(config).eval()
    sharpen(model)
    model.save_pretrained(folder)
    return folder


def remote_glm(native_folder: Path, folder: Path) -> Path:
    """A native GLM checkpoint's weights in THUDM's remote-code layout: fused QKV,
    ``transformer.encoder.layers``, ChatGLM config keys."""
    import shutil

    from safetensors.numpy import load_file, save_file

    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(native_folder / name, folder / name)
    native = load_file(str(native_folder / "model.safetensors"))
    cfg = json.loads((native_folder / "config.json").read_text())
    remote = {"transformer.embedding.word_embeddings.weight": native["model.embed_tokens.weight"],
              "transformer.encoder.final_layernorm.weight": native["model.norm.weight"],
              "transformer.output_layer.weight": native["lm_head.weight"]}
    for i in range(cfg["num_hidden_layers"]):
        src, dst = f"model.layers.{i}.", f"transformer.encoder.layers.{i}."
        for kind in ("weight", "bias"):
            remote[dst + f"self_attention.query_key_value.{kind}"] = np.concatenate(
                [native[src + f"self_attn.{p}_proj.{kind}"] for p in "qkv"])
        remote[dst + "self_attention.dense.weight"] = native[src + "self_attn.o_proj.weight"]
        remote[dst + "input_layernorm.weight"] = native[src + "input_layernorm.weight"]
        remote[dst + "post_attention_layernorm.weight"] = native[
            src + "post_attention_layernorm.weight"]
        remote[dst + "mlp.dense_h_to_4h.weight"] = native[src + "mlp.gate_up_proj.weight"]
        remote[dst + "mlp.dense_4h_to_h.weight"] = native[src + "mlp.down_proj.weight"]
    save_file(remote, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({
        "architectures": ["ChatGLMForConditionalGeneration"], "model_type": "chatglm",
        "num_layers": cfg["num_hidden_layers"], "hidden_size": cfg["hidden_size"],
        "ffn_hidden_size": cfg["intermediate_size"], "kv_channels": cfg["head_dim"],
        "num_attention_heads": cfg["num_attention_heads"], "multi_query_attention": True,
        "multi_query_group_num": cfg["num_key_value_heads"], "seq_length": 4096,
        "layernorm_epsilon": cfg["rms_norm_eps"], "rope_ratio": 500,
        "padded_vocab_size": cfg["vocab_size"], "add_qkv_bias": True, "torch_dtype": "float32",
    }))
    return folder


def tiktoken_glm(source: Path, folder: Path) -> tuple[dict[bytes, int], dict[str, int]]:
    """``source`` (a remote-code GLM checkpoint) with its tokenizer as LongWriter-glm4-9b ships
    it: a tiktoken ``tokenizer.model`` (base64 token, rank) and the special tokens in
    ``tokenizer_config.json``, no ``tokenizer.json``; its ranks and special ids."""
    import base64
    import shutil

    from lwlocal.families.byte_bpe import byte_to_unicode

    shutil.copytree(source, folder)
    data = json.loads((folder / "tokenizer.json").read_text())
    (folder / "tokenizer.json").unlink()
    specials = {t["content"]: t["id"] for t in data["added_tokens"]}
    to_byte = {c: b for b, c in byte_to_unicode().items()}
    ranks = {bytes(to_byte[c] for c in token): i for token, i in data["model"]["vocab"].items()
             if i not in specials.values()}
    (folder / "tokenizer.model").write_text("".join(
        f"{base64.b64encode(token).decode()} {rank}\n" for token, rank in ranks.items()))
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["added_tokens_decoder"] = {str(i): {"content": c, "special": True}
                                      for c, i in specials.items()}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return ranks, specials
