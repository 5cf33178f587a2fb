"""What a converter knows about one architecture family, as data: a table of tensor names,
the few real transforms, the metadata its config gives, and any tensors it adds."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lwlocal.util.errors import LwlocalError

Config = dict[str, Any]
Transform = Callable[[np.ndarray, Config], np.ndarray]


@dataclass(frozen=True)
class Architecture:
    """A family of HF checkpoints that converts to one GGUF architecture.

    ``names`` maps HF tensor names (regexes; ``(?P<bid>\\d+)`` is the block) to GGUF names
    (``{bid}`` filled in); ``transforms`` maps a GGUF name's suffix (e.g. ``attn_q.weight``) to
    a function of the array and the config; ``skip`` lists HF names that carry no weights.
    """

    gguf_arch: str
    hf_architectures: tuple[str, ...]
    names: tuple[tuple[str, str], ...]
    metadata: Callable[[Config, Callable[[str], None]], dict[str, Any]]
    skip: tuple[str, ...] = ()
    transforms: dict[str, Transform] = field(default_factory=dict)
    extra_tensors: Callable[[Config], dict[str, np.ndarray]] = lambda config: {}
    # llama.cpp's pre-tokenizer name for a Llama-3 style split regex in this family
    bpe_pre: str = "llama-bpe"
    # special tokens (type -> text) to set when the tokenizer files leave them unset
    special_tokens: dict[str, str] = field(default_factory=dict)
    add_bos: bool | None = None

    def vocab_size(self, config: Config) -> int:
        return config.get("padded_vocab_size") or config["vocab_size"]

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
