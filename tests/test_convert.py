"""HF -> GGUF conversion: tiny random Llama-3.1-layout checkpoints (with a Llama-3 style BPE
tokenizer) and the default model turned back into an HF checkpoint, checked against
transformers token for token and logit for logit."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from lwlocal.convert.run import convert  # noqa: E402
from lwlocal.errors import LwlocalError  # noqa: E402

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
GLM_SPECIALS = ["<|endoftext|>", "[MASK]", "[gMASK]", "[sMASK]", "<sop>", "<eop>", "<|system|>",
                "<|user|>", "<|assistant|>", "<|observation|>"]
GLM_TEMPLATE = ("[gMASK]<sop>{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}"
                "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")


def bpe_tokenizer(folder: Path, specials: list[str], config: dict) -> None:
    """A small byte-level BPE with Llama 3's pre-tokenizer (GLM-4 uses the same split)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    from lwlocal.convert.tokenizer import LLAMA3_SPLIT

    pattern = LLAMA3_SPLIT + r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS * 20, trainer)
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps(config))


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-llama")
    bpe_tokenizer(folder, LLAMA3_SPECIALS, {
        "bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>",
        "chat_template": "{% for m in messages %}[INST]{{ m['content'] }}[/INST]{% endfor %}",
    })
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


def sharpen(model) -> None:
    """Random weights large enough that every part matters: sharp attention makes rope (the
    positions) visible in the logits."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(0, 0.6 if ("q_proj" in name or "k_proj" in name) else 0.08)


def hf_logits(folder: Path, ids: list[int]) -> np.ndarray:
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].numpy()


def gguf_logits(path: Path, ids: list[int]) -> np.ndarray:
    import llama_cpp

    llm = llama_cpp.Llama(str(path), n_ctx=256, logits_all=True, type_k=0, type_v=0,
                          n_threads=2, verbose=False)
    llm.eval(ids)
    logits = np.array(llm.scores[: len(ids)])
    llm.close()
    return logits


@pytest.fixture(scope="module")
def tiny_glm(tmp_path_factory) -> Path:
    """transformers' native GLM-4 layout (GlmForCausalLM)."""
    folder = tmp_path_factory.mktemp("tiny-glm")
    bpe_tokenizer(folder, GLM_SPECIALS, {"eos_token": "<|endoftext|>",
                                         "chat_template": GLM_TEMPLATE})
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


@pytest.fixture(scope="module")
def tiny_chatglm(tiny_glm, tmp_path_factory) -> Path:
    """The same weights in THUDM's remote-code layout (LongWriter-glm4-9b's)."""
    return remote_glm(tiny_glm, tmp_path_factory.mktemp("tiny-chatglm"))


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


@pytest.mark.parametrize("outtype,max_diff,agreement", [("f32", 1e-3, 1.0), ("f16", None, 0.99)])
@pytest.mark.parametrize("layout", ["tiny_llama", "tiny_glm", "tiny_chatglm"])
def test_tiny_logits_match_transformers(request, tmp_path, layout, outtype, max_diff, agreement):
    folder = request.getfixturevalue(layout)
    reference = request.getfixturevalue("tiny_glm") if layout == "tiny_chatglm" else folder
    out = tmp_path / f"tiny-{outtype}.gguf"
    result = convert(folder, out, outtype)
    assert result.architecture == ("llama" if layout == "tiny_llama" else "chatglm")
    assert out.is_file() and not list(tmp_path.glob(".*partial"))
    agree = total = 0
    for ids in PROMPTS:
        ref, got = hf_logits(reference, ids), gguf_logits(out, ids)
        if max_diff is not None:
            assert np.abs(ref - got).max() < max_diff
        agree += int((ref.argmax(-1) == got.argmax(-1)).sum())
        total += len(ids)
    assert agree / total >= agreement


@pytest.mark.parametrize("layout,pre", [("tiny_llama", "llama-bpe"),
                                        ("tiny_chatglm", "chatglm-bpe")])
def test_tokenizer_matches_token_for_token(request, tmp_path, layout, pre):
    import llama_cpp
    from tokenizers import Tokenizer

    folder = request.getfixturevalue(layout)
    out = tmp_path / "tiny.gguf"
    convert(folder, out, "f16")
    llm = llama_cpp.Llama(str(out), vocab_only=True, verbose=False)
    assert llm.metadata["tokenizer.ggml.pre"] == pre
    source = Tokenizer.from_file(str(folder / "tokenizer.json"))
    for text in CORPUS + ["[gMASK]<sop><|user|>\nhello<|assistant|>"]:
        expected = source.encode(text, add_special_tokens=False).ids
        assert llm.tokenize(text.encode(), add_bos=False, special=True) == expected, text


def test_rope_freqs_written_for_llama3_scaling(tiny_llama, tmp_path):
    from gguf import GGUFReader

    out = tmp_path / "tiny.gguf"
    convert(tiny_llama, out, "f16")
    tensors = {t.name: t for t in GGUFReader(out).tensors}
    freqs = np.array(tensors["rope_freqs.weight"].data)
    assert freqs.shape == (8,) and freqs.min() == 1.0 and freqs.max() == 8.0


@pytest.mark.parametrize("break_it,problem", [
    (lambda f: (f / "config.json").unlink(), "no config.json"),
    (lambda f: (f / "tokenizer.json").unlink(), "has no tokenizer.json"),
    (lambda f: (f / "config.json").write_text('{"architectures": ["GPT2LMHeadModel"]}'),
     "not supported; supported: LlamaForCausalLM, ChatGLMModel"),
    (lambda f: _truncate(f / "model.safetensors"), "truncated"),
    (lambda f: _header_too_large(f / "model.safetensors"), "larger than the file"),
    (lambda f: ((f / "model.safetensors").unlink(), (f / "pytorch_model.bin").write_bytes(b"x")),
     "never unpickles"),
])
def test_bad_checkpoints_fail_cleanly(tiny_llama, tmp_path, break_it, problem):
    import shutil

    folder = tmp_path / "broken"
    shutil.copytree(tiny_llama, folder)
    break_it(folder)
    out = tmp_path / "out.gguf"
    with pytest.raises(LwlocalError, match=problem):
        convert(folder, out, "f16")
    assert not out.exists() and not list(tmp_path.glob(".*partial"))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _header_too_large(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[:8] = (len(data) * 2).to_bytes(8, "little")
    path.write_bytes(bytes(data))


def test_default_model_real_weights_round_trip(smollm_hf, smollm_f32):
    out = smollm_f32  # convert(smollm_hf, ..., "f32")
    text_ids = [[1, 504, 3575, 282, 4649, 314], [28, 9, 1500, 22, 7, 1234, 99, 10]]
    for ids in text_ids:
        ref, got = hf_logits(smollm_hf, ids), gguf_logits(out, ids)
        assert (ref.argmax(-1) == got.argmax(-1)).all()
        assert np.abs(ref - got).max() < 1e-2


def test_convert_command(tiny_llama, tmp_path, lw_home):
    from tests.conftest import run_cli

    out = tmp_path / "cli.gguf"
    proc = run_cli("convert", str(tiny_llama), "-o", str(out), env_home=lw_home, check=True)
    assert out.is_file() and "f16 (the default for F32 weights)" in proc.stderr
    missing = run_cli("convert", str(tmp_path / "nothing"), "-o", str(tmp_path / "x.gguf"),
                      env_home=lw_home)
    assert missing.returncode == 1 and missing.stderr.strip().endswith("(not a Hugging Face "
                                                                       "model folder)")
    assert len(missing.stderr.strip().splitlines()) == 1 and not (tmp_path / "x.gguf").exists()


def test_chatglm_metadata_follows_llama_cpp_conventions(tiny_chatglm, tmp_path):
    from gguf import GGUFReader

    out = tmp_path / "glm.gguf"
    result = convert(tiny_chatglm, out, "f16")
    assert result.warnings == []
    fields = {name: f.contents() for name, f in GGUFReader(out).fields.items()}
    assert fields["general.architecture"] == "chatglm"
    assert fields["chatglm.rope.freq_base"] == pytest.approx(5e6)  # 10000 x rope_ratio
    assert fields["chatglm.rope.dimension_count"] == 8  # half of the 16-wide heads
    assert fields["chatglm.context_length"] == 4096
    assert fields["chatglm.attention.head_count_kv"] == 2
    assert fields["chatglm.attention.layer_norm_rms_epsilon"] == pytest.approx(1.5625e-07)
    tokens = fields["tokenizer.ggml.tokens"]
    assert tokens[fields["tokenizer.ggml.eos_token_id"]] == "<|endoftext|>"
    assert tokens[fields["tokenizer.ggml.eot_token_id"]] == "<|user|>"
    assert fields["tokenizer.ggml.add_bos_token"] is False
    assert fields["tokenizer.chat_template"].startswith("[gMASK]<sop>")
    names = {t.name for t in GGUFReader(out).tensors}
    assert {"blk.0.attn_qkv.weight", "blk.0.attn_qkv.bias", "blk.1.ffn_up.weight"} <= names


def test_inspect_gguf_and_checkpoint(tiny_llama, default_model, lw_home):
    from tests.conftest import run_cli

    gguf_info = json.loads(run_cli("inspect", str(default_model), "--json", env_home=lw_home,
                                   check=True).stdout)
    assert gguf_info["general.architecture"] == "llama" and gguf_info["context_length"] == 8192
    assert gguf_info["tensors"] == 272 and gguf_info["tensor_types"]["Q4_1"] == 210
    hf_info = json.loads(run_cli("inspect", str(tiny_llama), "--json", env_home=lw_home,
                                 check=True).stdout)
    assert hf_info["architectures"] == ["LlamaForCausalLM"] and hf_info["dtype"] == "F32"
    assert hf_info["convert"].startswith("GGUF architecture llama, default outtype f16")


def tiktoken_glm(source: Path, folder: Path) -> tuple[dict[bytes, int], dict[str, int]]:
    """``source`` (a remote-code GLM checkpoint) with its tokenizer as LongWriter-glm4-9b ships
    it: a tiktoken ``tokenizer.model`` (base64 token, rank) and the special tokens in
    ``tokenizer_config.json``, no ``tokenizer.json``; its ranks and special ids."""
    import base64
    import shutil

    from lwlocal.convert.tiktoken_vocab import byte_to_unicode

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


def test_glm4_tiktoken_tokenizer_matches_tiktoken(tiny_chatglm, tmp_path):
    """LongWriter-glm4-9b ships a tiktoken ``tokenizer.model``; the converted vocabulary must
    tokenize as tiktoken does with the same ranks, pattern and special tokens."""
    import llama_cpp

    tiktoken = pytest.importorskip("tiktoken")
    from lwlocal.convert.tiktoken_vocab import GLM4_PATTERN

    folder = tmp_path / "glm-tiktoken"
    ranks, specials = tiktoken_glm(tiny_chatglm, folder)
    out = tmp_path / "glm-tiktoken.gguf"
    convert(folder, out, "f16")
    llm = llama_cpp.Llama(str(out), vocab_only=True, verbose=False)
    assert llm.metadata["tokenizer.ggml.pre"] == "chatglm-bpe"
    reference = tiktoken.Encoding("glm4-test", pat_str=GLM4_PATTERN, mergeable_ranks=ranks,
                                  special_tokens=specials)
    for text in CORPUS + ["[gMASK]<sop><|user|>\nhello<|assistant|>"]:
        expected = reference.encode(text, allowed_special="all")
        assert llm.tokenize(text.encode(), add_bos=False, special=True) == expected, text


def test_sharded_bf16_checkpoint(tiny_llama, tmp_path):
    """Shards through model.safetensors.index.json; bf16 weights widened without torch and
    written as bf16 by default."""
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.bfloat16)
    folder = tmp_path / "sharded-bf16"
    model.save_pretrained(folder, max_shard_size="100KB")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / name).write_bytes((tiny_llama / name).read_bytes())
    assert (folder / "model.safetensors.index.json").is_file()
    assert len(list(folder.glob("*.safetensors"))) > 2
    out = tmp_path / "bf16.gguf"
    result = convert(folder, out)
    assert result.source_dtype == "BF16" and result.outtype == "bf16"
    ids = PROMPTS[1]
    ref = hf_logits(folder, ids)  # transformers computes in f32 from the same bf16 weights
    got = gguf_logits(out, ids)
    assert (ref.argmax(-1) == got.argmax(-1)).mean() >= 0.95


def test_dtype_that_does_not_match_its_bytes(tiny_llama, tmp_path):
    import shutil
    import struct

    folder = tmp_path / "bad-shape"
    shutil.copytree(tiny_llama, folder)
    path = folder / "model.safetensors"
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8: 8 + n])
    name = next(k for k in header if k != "__metadata__")
    header[name]["dtype"] = "F16"  # the stored bytes are f32: twice what F16 would need
    raw = json.dumps(header, separators=(",", ":")).encode().ljust(n)
    assert len(raw) == n
    path.write_bytes(data[:8] + raw + data[8 + n:])
    with pytest.raises(LwlocalError, match=f"tensor {re.escape(name)}: .* bytes for shape"):
        convert(folder, tmp_path / "x.gguf", "f16")
