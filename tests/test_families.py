"""Model families: one module each, found by the registry; the converter, GPTQ and ``inspect``
read the same tables, and a new family (Qwen2) is one module."""

from __future__ import annotations

import pytest
from gguf import Keys

from lwlocal import families
from lwlocal.families import architecture_for, architectures, cards
from lwlocal.families.glm import CHATGLM, GLM
from lwlocal.families.glm_config import metadata
from lwlocal.families.glm_native import native_config
from lwlocal.families.llama import LLAMA
from lwlocal.families.qwen2 import QWEN2
from lwlocal.util.errors import LwlocalError


def test_registry_finds_each_family_module():
    assert architectures() == {"LlamaForCausalLM": LLAMA, "ChatGLMModel": CHATGLM,
                               "ChatGLMForConditionalGeneration": CHATGLM,
                               "GlmForCausalLM": GLM, "Qwen2ForCausalLM": QWEN2}
    assert set(cards()) == {"longwriter-glm4-9b", "longwriter-llama3.1-8b", "smollm2-135m"}
    with pytest.raises(LwlocalError, match=r"cfg: architecture BertModel is not supported for x"):
        architecture_for({"architectures": ["BertModel"]}, "cfg", " for x")


@pytest.mark.parametrize("arch", [LLAMA, CHATGLM, GLM, QWEN2],
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


def test_a_third_family_is_one_module(tiny_qwen2):
    """Qwen2 is the one file ``families/qwen2.py``: the registry finds it, ``inspect`` names its
    GGUF architecture (its conversion is checked against transformers in test_convert)."""
    from lwlocal.convert.inspect import inspect_checkpoint

    assert [m.__name__ for m in families._family_modules() if QWEN2 in m.ARCHITECTURES] == [
        "lwlocal.families.qwen2"]
    assert "GGUF architecture qwen2" in inspect_checkpoint(tiny_qwen2)["convert"]
