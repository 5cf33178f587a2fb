"""What the memory model knows of a model: its dimensions and the bytes of its weights, read
exactly from a GGUF or estimated from a model card before any download."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lwlocal.families.base import ModelCard
from lwlocal.models.gguf_file import gguf_metadata, read_gguf
from lwlocal.quant.types import NOMINAL_BPW, quant_type
from lwlocal.util.errors import LwlocalError, SettingError

DEFAULT_QUANT = "Q4_K_M"
REPACKED_TYPES = ("Q4_0", "Q4_K", "IQ4_NL")  # llama.cpp's 8x8 CPU layouts on AVX2


@dataclass(frozen=True)
class ModelShape:
    """What the memory model needs to know about a model and its weights."""

    name: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    n_embd: int
    n_ff: int
    n_vocab: int
    context_length: int
    layer_bytes: tuple[int, ...]  # weights of each block
    input_bytes: int  # token embeddings: llama.cpp keeps them on the CPU
    output_bytes: int  # output norm and head: offloaded when every layer is
    exact: bool  # sizes read from a GGUF (else estimated from a card)
    quant: str
    # weights of each block that llama.cpp's CPU backend repacks into a second copy (its mapped
    # original, read to make the copy, stays resident): Q4_0, Q4_K and IQ4_NL matrices with
    # rows a multiple of 8, on AVX2 (not estimated from a card)
    layer_repacked: tuple[int, ...] = ()

    @property
    def weight_bytes(self) -> int:
        return sum(self.layer_bytes) + self.input_bytes + self.output_bytes


def shape_from_card(card: ModelCard, quant: str = DEFAULT_QUANT) -> ModelShape:
    """Estimated shape of a card's model quantized to ``quant`` (before any download)."""
    quant = quant.upper()
    quant = quant_type(quant)[0]
    if quant not in NOMINAL_BPW:
        raise SettingError(f"{{quant}} {quant}: no size estimate for it; choose one of "
                           f"{', '.join(NOMINAL_BPW)}")
    bpw = NOMINAL_BPW[quant]
    embedding = card.vocab_size * card.hidden_size
    per_layer = (card.n_params - 2 * embedding) / card.n_layers
    to_bytes = lambda params: int(params * bpw / 8)  # noqa: E731
    return ModelShape(
        card.name, card.n_layers, card.n_heads, card.n_kv_heads, card.head_dim,
        card.hidden_size, card.ffn_size, card.vocab_size, card.context_length,
        (to_bytes(per_layer),) * card.n_layers, to_bytes(embedding), to_bytes(embedding),
        exact=False, quant=quant,
    )


def shape_from_gguf(path: Path, name: str | None = None) -> ModelShape:
    """Exact shape of a GGUF: metadata and per-tensor sizes, no weights loaded."""
    from gguf import Keys

    meta = gguf_metadata(path)
    arch = meta.get(Keys.General.ARCHITECTURE)
    reader = read_gguf(path)

    def value(template: str, default: int | None = None) -> int:
        key = template.format(arch=arch)
        return int(meta[key] if default is None else meta.get(key, default))

    try:
        n_layers = value(Keys.LLM.BLOCK_COUNT)
        n_embd = value(Keys.LLM.EMBEDDING_LENGTH)
        n_heads = value(Keys.Attention.HEAD_COUNT)
        n_kv = value(Keys.Attention.HEAD_COUNT_KV, n_heads)
        head_dim = value(Keys.Attention.KEY_LENGTH, n_embd // n_heads)
        n_ff = value(Keys.LLM.FEED_FORWARD_LENGTH)
        context = value(Keys.LLM.CONTEXT_LENGTH)
    except (KeyError, TypeError, ValueError) as exc:
        raise LwlocalError(f"{path}: GGUF metadata lacks {exc} for architecture {arch}") from exc
    layers = [0] * n_layers
    repacked = [0] * n_layers
    input_bytes = output_bytes = 0
    n_vocab = 0
    for tensor in reader.tensors:
        size = int(tensor.n_bytes)
        if tensor.name.startswith("blk."):
            layers[int(tensor.name.split(".")[1])] += size
            if (tensor.tensor_type.name in REPACKED_TYPES and len(tensor.shape) == 2
                    and tensor.shape[1] % 8 == 0):
                repacked[int(tensor.name.split(".")[1])] += size
        elif tensor.name.startswith("token_embd"):
            input_bytes += size
            n_vocab = int(tensor.shape[-1])
        else:
            output_bytes += size
    types = {t.tensor_type.name for t in reader.tensors if t.name.startswith("blk.")}
    quant = "/".join(sorted(types - {"F32"})) or "F32"
    return ModelShape(name or path.name, n_layers, n_heads, n_kv, head_dim, n_embd, n_ff,
                      value(Keys.LLM.VOCAB_SIZE, n_vocab) or n_vocab, context,
                      tuple(layers), input_bytes, output_bytes, exact=True, quant=quant,
                      layer_repacked=tuple(repacked))
