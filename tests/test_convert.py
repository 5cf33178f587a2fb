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
from lwlocal.util.cpu import default_threads  # noqa: E402
from lwlocal.util.errors import LwlocalError  # noqa: E402
from tests.support.checkpoints import CORPUS, PROMPTS, hf_logits, tiktoken_glm  # noqa: E402


def gguf_logits(path: Path, ids: list[int]) -> np.ndarray:
    import llama_cpp

    llm = llama_cpp.Llama(str(path), n_ctx=256, logits_all=True, type_k=0, type_v=0,
                          n_threads=default_threads(), verbose=False)
    llm.eval(ids)
    logits = np.array(llm.scores[: len(ids)])
    llm.close()
    return logits


@pytest.mark.parametrize("outtype,max_diff,agreement", [("f32", 1e-3, 1.0), ("f16", None, 0.99)])
@pytest.mark.parametrize("layout,architecture", [
    ("tiny_llama", "llama"), ("tiny_glm", "chatglm"), ("tiny_chatglm", "chatglm"),
    ("tiny_qwen2", "qwen2")])
def test_tiny_logits_match_transformers(request, tmp_path, layout, architecture, outtype,
                                        max_diff, agreement):
    folder = request.getfixturevalue(layout)
    reference = request.getfixturevalue("tiny_glm") if layout == "tiny_chatglm" else folder
    out = tmp_path / f"tiny-{outtype}.gguf"
    result = convert(folder, out, outtype)
    assert result.architecture == architecture
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
                                        ("tiny_chatglm", "chatglm-bpe"), ("tiny_qwen2", "qwen2")])
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
     "architecture GPT2LMHeadModel is not supported; supported: ChatGLMModel"),
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
    from tests.support.cli import run_cli

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
    from tests.support.cli import run_cli

    gguf_info = json.loads(run_cli("inspect", str(default_model), "--json", env_home=lw_home,
                                   check=True).stdout)
    assert gguf_info["general.architecture"] == "llama" and gguf_info["context_length"] == 8192
    assert gguf_info["tensors"] == 272 and gguf_info["tensor_types"]["Q4_1"] == 210
    hf_info = json.loads(run_cli("inspect", str(tiny_llama), "--json", env_home=lw_home,
                                 check=True).stdout)
    assert hf_info["architectures"] == ["LlamaForCausalLM"] and hf_info["dtype"] == "F32"
    assert hf_info["convert"].startswith("GGUF architecture llama, default outtype f16")


def test_glm4_tiktoken_tokenizer_matches_tiktoken(tiny_chatglm, tmp_path):
    """LongWriter-glm4-9b ships a tiktoken ``tokenizer.model``; the converted vocabulary must
    tokenize as tiktoken does with the same ranks, pattern and special tokens."""
    import llama_cpp

    tiktoken = pytest.importorskip("tiktoken")
    from lwlocal.families.byte_bpe import LLAMA3_PATTERN

    folder = tmp_path / "glm-tiktoken"
    ranks, specials = tiktoken_glm(tiny_chatglm, folder)
    out = tmp_path / "glm-tiktoken.gguf"
    convert(folder, out, "f16")
    llm = llama_cpp.Llama(str(out), vocab_only=True, verbose=False)
    assert llm.metadata["tokenizer.ggml.pre"] == "chatglm-bpe"
    reference = tiktoken.Encoding("glm4-test", pat_str=LLAMA3_PATTERN, mergeable_ranks=ranks,
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


@pytest.mark.parametrize("checkpoint,fmt", [("tiny_llama", "llama3"), ("tiny_llama", "inst"),
                                            ("tiny_chatglm", "glm4")])
def test_the_writers_window_moves_in_the_longwriter_formats(checkpoint, fmt, tmp_path, request):
    """Leaving sections out is one stretch cut from the token list only where the request
    after the plan tokenizes as it does after a later turn's opener: so in LongWriter's own
    prompt formats and pre-tokenizers (llama3 and [INST] on Llama-3.1's, glm4 on GLM-4's),
    the KV cache's window moves rather than being evaluated again."""
    from lwlocal.families.prompt_format import FORMATS
    from lwlocal.runtime.chat import LocalChat, Message
    from lwlocal.runtime.engine import Engine

    out = tmp_path / "tiny.gguf"
    convert(request.getfixturevalue(checkpoint), out, "f16")
    chat = LocalChat(Engine(out, n_ctx=512, n_threads=1), FORMATS[fmt])
    plan = "The plan:\n1. Rivers\n2. Lakes\n3. Seas"
    old = [Message("user", f"{plan}\n\nNow write section 1 of 3, Rivers."),
           Message("assistant", "Rivers run to the sea."),
           Message("user", "Now write section 2 of 3, Lakes."),
           Message("assistant", "Lakes are still."),
           Message("user", "Now write section 3 of 3, Seas.")]
    new = [Message("user", f"{plan}\n\nNow write section 2 of 3, Lakes."), *old[3:]]
    assert chat.move_window(old, new)
    assert chat.engine.stats.window_moves == 1
