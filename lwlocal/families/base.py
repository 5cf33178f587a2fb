"""What lwlocal knows about a model family, as data: for each HF architecture of the family a
table of tensor names, the few real transforms, the dimensions and GGUF metadata its config
gives and any tensors it adds; and the family's model cards.

A family is one module of this package defining ``ARCHITECTURES`` and ``CARDS``; the converter,
GPTQ, the memory planner and ``inspect`` read them through :mod:`lwlocal.families`."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lwlocal.families.byte_bpe import LLAMA3_SPLIT
from lwlocal.families.prompt_format import FORMATS, PromptFormat
from lwlocal.util.errors import LwlocalError

Config = dict[str, Any]
Warn = Callable[[str], None]


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

    @property
    def q_size(self) -> int:
        return self.n_heads * self.head_dim

    @property
    def kv_size(self) -> int:
        return self.n_kv_heads * self.head_dim

    @property
    def qkv_size(self) -> int:
        return self.q_size + 2 * self.kv_size

    @property
    def gate_up_size(self) -> int:
        return 2 * self.ffn_size


Transform = Callable[[np.ndarray, Shape], np.ndarray]
# Each GGUF tensor's shape as the checkpoint stores it (rows first), in ``Shape``'s dimensions;
# a block's tensors carry ``{bid}``. A family whose tensor differs says so in ``shapes``.
TENSOR_SHAPES: dict[str, tuple[str, ...]] = {
    "token_embd.weight": ("vocab_size", "hidden_size"),
    "output_norm.weight": ("hidden_size",),
    "output.weight": ("vocab_size", "hidden_size"),
    "blk.{bid}.attn_norm.weight": ("hidden_size",),
    "blk.{bid}.attn_q.weight": ("q_size", "hidden_size"),
    "blk.{bid}.attn_k.weight": ("kv_size", "hidden_size"),
    "blk.{bid}.attn_v.weight": ("kv_size", "hidden_size"),
    "blk.{bid}.attn_q.bias": ("q_size",),
    "blk.{bid}.attn_k.bias": ("kv_size",),
    "blk.{bid}.attn_v.bias": ("kv_size",),
    "blk.{bid}.attn_qkv.weight": ("qkv_size", "hidden_size"),
    "blk.{bid}.attn_qkv.bias": ("qkv_size",),
    "blk.{bid}.attn_output.weight": ("hidden_size", "q_size"),
    "blk.{bid}.ffn_norm.weight": ("hidden_size",),
    "blk.{bid}.ffn_gate.weight": ("ffn_size", "hidden_size"),
    "blk.{bid}.ffn_up.weight": ("ffn_size", "hidden_size"),
    "blk.{bid}.ffn_down.weight": ("hidden_size", "ffn_size"),
}


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
    ``required`` lists the GGUF tensors every checkpoint of the layout has (``{bid}``: in
    every block), the others ``names`` gives being optional (a tied output, biases);
    ``shapes`` overrides ``TENSOR_SHAPES`` where the layout differs; ``transforms`` maps a GGUF
    name's suffix (e.g. ``attn_q.weight``) to a function of the array and the dimensions;
    ``skip`` lists HF names that carry no weights; ``metadata`` gives the GGUF keys as
    ``gguf.Keys`` templates (``{arch}`` filled in by the writer).
    """

    name: str
    gguf_arch: str
    hf_architectures: tuple[str, ...]
    names: tuple[tuple[str, str], ...]
    required: tuple[str, ...]
    shape: Callable[[Config, Warn], Shape]
    metadata: Callable[[Config, Warn], dict[str, Any]]
    shapes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    skip: tuple[str, ...] = ()
    transforms: dict[str, Transform] = field(default_factory=dict)
    extra_tensors: Callable[[Config, Shape, Warn], dict[str, np.ndarray]] = (
        lambda config, dims, warn: {})
    # llama.cpp's pre-tokenizer names by the hash llama.cpp takes of the ids a tokenizer gives
    # its check text; for a tokenizer it has not hashed (a fine-tune's, a test model's) whose
    # pre-tokenizer splits with ``bpe_split``, ``bpe_pre``
    bpe_hashes: dict[str, str] = field(default_factory=dict)
    bpe_pre: str = "llama-bpe"
    bpe_split: str = LLAMA3_SPLIT
    # special tokens (type -> text) to set when the tokenizer files leave them unset
    special_tokens: dict[str, str] = field(default_factory=dict)
    # for a family whose checkpoints may ship a tiktoken ``tokenizer.model`` in place of a
    # tokenizer.json: the special tokens its code numbers after the ranks, for a
    # tokenizer_config.json that does not list them
    tiktoken_specials: tuple[str, ...] = ()
    add_bos: bool | None = None
    # a remote-code layout: writes a checkpoint of it (first folder) again as one transformers
    # loads without remote code, with a tokenizer.json (second folder), for GPTQ and evaluation
    native_relayout: Callable[[Path, Path], Path] | None = None
    # joins again, in the checkpoint GPTQModel saved, the fused projections it quantized apart
    # (their parts need one group order: no desc_act)
    gptq_join: Callable[[Path], None] | None = None

    def gguf_name(self, hf_name: str) -> str | None:
        """The GGUF name of an HF tensor; None for tensors to skip; error for unknown ones."""
        if any(re.fullmatch(pattern, hf_name) for pattern in self.skip):
            return None
        for pattern, template in self.names:
            if match := re.fullmatch(pattern, hf_name):
                return template.format(**match.groupdict())
        raise LwlocalError(f"tensor {hf_name}: not part of the {self.gguf_arch} layout")

    def hf_name(self, gguf_name: str) -> str:
        """The checkpoint's name for a GGUF tensor, for messages (the GGUF name if no table
        entry makes it)."""
        for pattern, template in self.names:
            wildcards = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>.+?)", re.escape(template))
            if parts := re.fullmatch(wildcards, gguf_name):
                filled = re.sub(r"\(\?P<(\w+)>[^()]*\)",
                                lambda group: parts[group[1]], pattern)
                if re.fullmatch(pattern, name := re.sub(r"\\(.)", r"\1", filled)):
                    return name
        return gguf_name

    def tensor_shapes(self, dims: Shape) -> dict[str, tuple[int, ...]]:
        """Every GGUF tensor the layout may have, with the shape ``dims`` gives it."""
        shapes = {**TENSOR_SHAPES, **self.shapes}
        blocks = [{"bid": bid} for bid in range(dims.n_layers)]
        return {name.format(**block): tuple(getattr(dims, d) for d in shape)
                for name, shape in shapes.items()
                for block in (blocks if "{bid}" in name else [{}])}

    def required_tensors(self, dims: Shape) -> list[str]:
        """The GGUF tensors a checkpoint with dimensions ``dims`` must have, block by block."""
        top = [name for name in self.required if "{bid}" not in name]
        return top + [name.format(bid=bid) for bid in range(dims.n_layers)
                      for name in self.required if "{bid}" in name]

    def transforms_tensor(self, gguf_name: str) -> bool:
        return any(gguf_name.endswith(suffix) for suffix in self.transforms)

    def transform(self, gguf_name: str, array: np.ndarray, dims: Shape) -> np.ndarray:
        for suffix, function in self.transforms.items():
            if gguf_name.endswith(suffix):
                return function(array, dims)
        return array


@dataclass(frozen=True)
class Limit:
    """The type and range of a config.json value: ``kind`` int, float (ints accepted) or
    bool; between ``low`` and ``high``, and above ``low`` when ``above``."""

    kind: type
    low: float = 0
    high: float = math.inf
    above: bool = False

    def check(self, name: str, value: Any) -> Any:
        """``value`` if it fits, else an error naming ``name``."""
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if self.kind is bool:
            if not isinstance(value, bool):
                raise LwlocalError(f"{name} {_short(value)} is not true or false")
            return value
        if not numeric or (self.kind is int and not isinstance(value, int)):
            kind = "a whole number" if self.kind is int else "a number"
            raise LwlocalError(f"{name} {_short(value)} is not {kind}")
        low_ok = value > self.low if self.above else value >= self.low
        if not (low_ok and value <= self.high):
            low = f"above {_number(self.low)}" if self.above else f"from {_number(self.low)}"
            high = "" if self.high == math.inf else f" to {_number(self.high)}"
            raise LwlocalError(f"{name} {_short(value)} is out of range ({low}{high})")
        return self.kind(value)


COUNT = Limit(int, 1, 2**31 - 1)  # layers, heads, sizes, positions (GGUF keeps them in 32 bits)
POSITIVE = Limit(float, 0, 3.4e38, above=True)  # rope bases and factors (f32 in GGUF)
EPSILON = Limit(float, 0, 1)
SHARE = Limit(float, 0, 1, above=True)  # a share of each head, such as its rotary part
FLAG = Limit(bool)


def value(config: Config, key: str, limit: Limit = COUNT, section: str = "") -> Any:
    """``config[key]`` checked against ``limit``; None when absent or null. ``section`` names
    where ``config`` lies in config.json (``rope_scaling.``), for the message."""
    found = config.get(key)
    if found is None:
        return None
    try:
        return limit.check(f"{section}{key}", found)
    except LwlocalError as exc:
        raise LwlocalError(f"config.json: {exc}") from None


def hparam(config: Config, warn: Warn, *keys: str, limit: Limit = COUNT, default: Any = None,
           section: str = "") -> Any:
    """The first of ``keys`` the config has, checked against ``limit``; else ``default``,
    with a warning naming it; an error when there is no default."""
    for key in keys:
        if (found := value(config, key, limit, section)) is not None:
            return found
    if default is None:
        raise LwlocalError(f"config.json: missing {section}{keys[0]}")
    warn(f"config.json has no {section}{keys[0]}; using the architecture's default {default}")
    return default


def head_size(config: Config, hidden: int, heads: int, *keys: str) -> int:
    """The width of one attention head: the first of ``keys`` the config has, else the hidden
    size over the heads; even, as rope turns pairs."""
    for key in keys:
        if (size := value(config, key)) is not None:
            where = f"{key} {size}"
            break
    else:
        if hidden % heads:
            raise LwlocalError(f"config.json: hidden_size {hidden} is not a multiple of "
                               f"num_attention_heads {heads}")
        size, where = hidden // heads, f"hidden_size / num_attention_heads = {hidden // heads}"
    if size % 2:
        raise LwlocalError(f"config.json: {where} is odd; rope turns pairs of values")
    return size


def grouped_heads(heads: int, kv_heads: int, kv_key: str) -> int:
    """``kv_heads`` (from ``kv_key``), checked to share the attention heads out evenly."""
    if heads % kv_heads:
        raise LwlocalError(f"config.json: num_attention_heads {heads} is not a multiple of "
                           f"{kv_key} {kv_heads}")
    return kv_heads


ROPE_SECTIONS = ("rope_scaling", "rope_parameters")  # later ones win
ROPE_LIMITS = {"rope_theta": POSITIVE, "partial_rotary_factor": SHARE, "factor": POSITIVE,
               "low_freq_factor": POSITIVE, "high_freq_factor": POSITIVE,
               "original_max_position_embeddings": COUNT}


def rope(config: Config) -> dict[str, Any]:
    """Rope settings, their numbers checked: transformers 5 writes ``rope_parameters``, older
    ones ``rope_scaling`` and a top-level ``rope_theta``/``partial_rotary_factor``."""
    top = {key: config.get(key) for key in ("rope_theta", "partial_rotary_factor")}
    sections = [("", top), *((f"{name}.", config.get(name)) for name in ROPE_SECTIONS)]
    params: dict[str, Any] = {}
    for section, part in sections:
        if part is None:
            continue
        if not isinstance(part, dict):
            raise LwlocalError(f"config.json: {section[:-1]} {_short(part)} is not an object")
        for key, found in part.items():
            if key in ROPE_LIMITS:
                found = value(part, key, ROPE_LIMITS[key], section)
            if found is not None:
                params[key] = found
    kind = params.get("rope_type") or params.get("type")
    if kind is not None and not isinstance(kind, str):
        raise LwlocalError(f"config.json: rope type {_short(kind)} is not a name")
    return params


def rope_section(config: Config) -> str:
    """Where config.json keeps the rope scaling, for messages (``rope_parameters.``)."""
    return next((f"{name}." for name in reversed(ROPE_SECTIONS) if config.get(name) is not None),
                "rope_scaling.")


def _number(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def _short(value: Any) -> str:
    """A config value for a one-line message."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
