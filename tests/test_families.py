"""Model families: one module each, found by the registry; the converter, GPTQ and ``inspect``
read the same tables, and a new family is a table."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest
from gguf import Keys

from lwlocal import families
from lwlocal.families import architecture_for, architectures, cards
from lwlocal.families.base import Architecture
from lwlocal.families.glm import CHATGLM
from lwlocal.families.glm_config import metadata
from lwlocal.families.glm_native import native_config
from lwlocal.families.llama import LLAMA
from lwlocal.families.llama import metadata as llama_metadata
from lwlocal.families.llama import shape as llama_shape
from lwlocal.util.errors import LwlocalError

QWEN2_LAYER = r"model\.layers\.(?P<bid>\d+)\."
# A third family, as a table only: Qwen2 is Llama's layout with q/k/v biases and NEOX rope (so
# no rows are reordered); its dimensions and metadata read as Llama's do.
QWEN2 = Architecture(
    name="qwen2",
    gguf_arch="qwen2",
    hf_architectures=("Qwen2ForCausalLM",),
    names=(
        (r"model\.embed_tokens\.weight", "token_embd.weight"),
        (r"model\.norm\.weight", "output_norm.weight"),
        (r"lm_head\.weight", "output.weight"),
        (QWEN2_LAYER + r"input_layernorm\.weight", "blk.{bid}.attn_norm.weight"),
        (QWEN2_LAYER + r"self_attn\.(?P<p>[qkv])_proj\.(?P<kind>weight|bias)",
         "blk.{bid}.attn_{p}.{kind}"),
        (QWEN2_LAYER + r"self_attn\.o_proj\.weight", "blk.{bid}.attn_output.weight"),
        (QWEN2_LAYER + r"post_attention_layernorm\.weight", "blk.{bid}.ffn_norm.weight"),
        (QWEN2_LAYER + r"mlp\.(?P<p>gate|up|down)_proj\.weight", "blk.{bid}.ffn_{p}.weight"),
    ),
    required=LLAMA.required,
    shape=llama_shape,
    metadata=llama_metadata,
)


def test_registry_finds_each_family_module():
    assert architectures() == {"LlamaForCausalLM": LLAMA, "ChatGLMModel": CHATGLM,
                               "ChatGLMForConditionalGeneration": CHATGLM,
                               "GlmForCausalLM": architectures()["GlmForCausalLM"]}
    assert set(cards()) == {"longwriter-glm4-9b", "longwriter-llama3.1-8b", "smollm2-135m"}
    with pytest.raises(LwlocalError, match=r"cfg: architecture BertModel is not supported for x"):
        architecture_for({"architectures": ["BertModel"]}, "cfg", " for x")


@pytest.mark.parametrize("arch", [LLAMA, CHATGLM, architectures()["GlmForCausalLM"], QWEN2],
                         ids=lambda arch: arch.name)
def test_every_tensor_has_a_shape_and_a_checkpoint_name(arch):
    """The converter checks each tensor's shape against the config from the tensor table, and
    names a missing one as the checkpoint does (the tiny checkpoints' conversions check the
    optional tensors' shapes)."""
    config = {"num_attention_heads": 4, "num_key_value_heads": 2, "hidden_size": 64,
              "num_hidden_layers": 2, "intermediate_size": 96, "vocab_size": 640,
              "max_position_embeddings": 64, "kv_channels": 16, "num_layers": 2,
              "ffn_hidden_size": 96, "padded_vocab_size": 640}
    dims = arch.shape(config, lambda _: None)
    shapes = arch.tensor_shapes(dims)
    required = arch.required_tensors(dims)
    assert len(required) == len(set(required)) > 2 * dims.n_layers
    for name in required:
        hf_name = arch.hf_name(name)
        assert name in shapes and hf_name != name and arch.gguf_name(hf_name) == name


@pytest.mark.parametrize("grouped,kv_heads", [(True, 2), (False, 4)])
def test_glm_kv_heads_follow_multi_query_attention(grouped, kv_heads):
    """The converter and the native relayout read KV heads from one place: the remote code
    groups them only when ``multi_query_attention`` is set."""
    config = {"num_attention_heads": 4, "multi_query_attention": grouped,
              "multi_query_group_num": 2, "hidden_size": 64, "kv_channels": 16,
              "num_layers": 2, "ffn_hidden_size": 96, "padded_vocab_size": 640,
              "seq_length": 4096, "rope_ratio": 1}
    meta = metadata(config, lambda _: None)
    assert meta[Keys.Attention.HEAD_COUNT_KV] == kv_heads
    assert native_config(config)["num_key_value_heads"] == kv_heads


@pytest.fixture(scope="module")
def tiny_qwen2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tests.support.checkpoints import LLAMA3_SPECIALS, bpe_tokenizer, sharpen

    folder = tmp_path_factory.mktemp("tiny-qwen2")
    bpe_tokenizer(folder, LLAMA3_SPECIALS, {"eos_token": "<|eot_id|>"})
    config = transformers.Qwen2Config(
        vocab_size=640, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        rms_norm_eps=1e-6, tie_word_embeddings=False, use_sliding_window=False,
        bos_token_id=0, eos_token_id=2)
    torch.manual_seed(2)
    model = transformers.Qwen2ForCausalLM(config).eval()
    sharpen(model)
    model.save_pretrained(folder)
    return folder


def test_a_third_family_is_a_table(tiny_qwen2, tmp_path, monkeypatch):
    """Registering the table above is all it takes: the converter makes a GGUF that llama.cpp
    runs as qwen2 with transformers' logits, and ``inspect`` names its architecture."""
    from lwlocal.convert.inspect import inspect_checkpoint
    from lwlocal.convert.run import convert
    from tests.support.checkpoints import PROMPTS, hf_logits
    from tests.test_convert import gguf_logits

    found = families._family_modules()
    extra = types.SimpleNamespace(ARCHITECTURES=(QWEN2,), CARDS=())
    monkeypatch.setattr(families, "_family_modules", lambda: (*found, extra))
    assert "GGUF architecture qwen2" in inspect_checkpoint(tiny_qwen2)["convert"]
    out = convert(tiny_qwen2, tmp_path / "qwen2.gguf", "f32")
    assert out.architecture == "qwen2"
    for ids in PROMPTS:
        assert np.abs(hf_logits(tiny_qwen2, ids) - gguf_logits(out.path, ids)).max() < 1e-3
