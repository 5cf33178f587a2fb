"""What lwlocal knows about a model family, as data: for each HF architecture of the family a
table of tensor names, the few real transforms, the dimensions and GGUF metadata its config
gives and any tensors it adds; and the family's model cards.

A family is one module of this package defining ``ARCHITECTURES`` and ``CARDS``; the converter,
GPTQ, the memory planner and ``inspect`` read them through :mod:`lwlocal.families`."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lwlocal.families.prompt_format import FORMATS, PromptFormat
from lwlocal.util.errors import LwlocalError

Config = dict[str, Any]
Warn = Callable[[str], None]
Transform = Callable[[np.ndarray, Config], np.ndarray]


@dataclass(frozen=True)
class Shape:
    """A checkpoint's dimensions, read from its config.json by its family."""

    n_layers: int
    hidden_size: int
    ffn_size: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    vocab_size: int
    context_length: int  # positions the config allows


@dataclass(frozen=True)
class ModelCard:
    """Architecture facts of one published model, as its config files give them."""

    name: str
    hub_id: str
    architecture: str  # GGUF architecture name (llama, chatglm)
    hf_architecture: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    hidden_size: int
    ffn_size: int
    vocab_size: int
    context_length: int  # context the model was trained to use
    config_context: int  # positions the config allows (seq_length / max_position_embeddings)
    n_params: float  # parameters, for size estimates
    prompt_format: str  # key of prompt_format.FORMATS
    license: str
    description: str

    @property
    def format(self) -> PromptFormat:
        return FORMATS[self.prompt_format]

    def kv_bytes_per_token(self, bytes_per_element: float = 2.0) -> float:
        """K and V cache bytes one token of context costs (f16 by default)."""
        return 2 * self.n_layers * self.n_kv_heads * self.head_dim * bytes_per_element


@dataclass(frozen=True)
class Architecture:
    """A family of HF checkpoints that converts to one GGUF architecture.

    ``name`` names the layout (``llama``, ``glm``, ``chatglm``); ``names`` maps HF tensor names
    (regexes; ``(?P<bid>\\d+)`` is the block) to GGUF names (``{bid}`` filled in);
    ``transforms`` maps a GGUF name's suffix (e.g. ``attn_q.weight``) to a function of the
    array and the config; ``skip`` lists HF names that carry no weights; ``metadata`` gives the
    GGUF keys as ``gguf.Keys`` templates (``{arch}`` filled in by the writer).
    """

    name: str
    gguf_arch: str
    hf_architectures: tuple[str, ...]
    names: tuple[tuple[str, str], ...]
    shape: Callable[[Config, Warn], Shape]
    metadata: Callable[[Config, Warn], dict[str, Any]]
    skip: tuple[str, ...] = ()
    transforms: dict[str, Transform] = field(default_factory=dict)
    extra_tensors: Callable[[Config], dict[str, np.ndarray]] = lambda config: {}
    # llama.cpp's pre-tokenizer name for a Llama-3 style split regex in this family
    bpe_pre: str = "llama-bpe"
    # special tokens (type -> text) to set when the tokenizer files leave them unset
    special_tokens: dict[str, str] = field(default_factory=dict)
    add_bos: bool | None = None
    # a remote-code layout that transformers (and GPTQ) load only once laid out natively
    remote_code: bool = False
    # gate and up projections fused in one tensor (GPTQ quantizes them apart, then joins them)
    fused_gate_up: bool = False

    def gguf_name(self, hf_name: str) -> str | None:
        """The GGUF name of an HF tensor; None for tensors to skip; error for unknown ones."""
        if any(re.fullmatch(pattern, hf_name) for pattern in self.skip):
            return None
        for pattern, template in self.names:
            if match := re.fullmatch(pattern, hf_name):
                return template.format(**match.groupdict())
        raise LwlocalError(f"tensor {hf_name}: not part of the {self.gguf_arch} layout")

    def transforms_tensor(self, gguf_name: str) -> bool:
        return any(gguf_name.endswith(suffix) for suffix in self.transforms)

    def transform(self, gguf_name: str, array: np.ndarray, config: Config) -> np.ndarray:
        for suffix, function in self.transforms.items():
            if gguf_name.endswith(suffix):
                return function(array, config)
        return array


def hparam(config: Config, warn: Callable[[str], None], *keys: str, default: Any = None) -> Any:
    """The first of ``keys`` the config has; else ``default``, with a warning naming it."""
    for key in keys:
        if config.get(key) is not None:
            return config[key]
    if default is None:
        raise LwlocalError(f"config.json: missing {keys[0]}")
    warn(f"config.json has no {keys[0]}; using the architecture's default {default}")
    return default


def rope(config: Config) -> dict[str, Any]:
    """Rope settings: transformers 5 writes ``rope_parameters``, older ones ``rope_scaling``
    and a top-level ``rope_theta``/``partial_rotary_factor``."""
    params = dict(config.get("rope_scaling") or {})
    params.update(config.get("rope_parameters") or {})
    for key in ("rope_theta", "partial_rotary_factor"):
        if config.get(key) is not None:
            params.setdefault(key, config[key])
    return params
