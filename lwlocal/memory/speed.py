"""What a token costs on this machine: seconds to decode one, or to evaluate a batch of prompt
tokens, at a context depth, for a model's shape and a plan's settings.

From what a token does, with constants measured on this machine and llama.cpp build
(:mod:`lwlocal.memory.speed_probe`), not a table of models:

- decode: every weight matrix is read once per token (``weight_bytes_per_s``), each block costs
  a fixed ``decode_block_s`` (graph, threads, sampling spread over the blocks), and attention
  reads the KV cache: a cost per query head, head element, block and token of depth, by KV type
  (a quantized cache reads fewer bytes but dequantizes them);
- prefill: two FLOPs per block weight per token (``flops_per_s``), the weights read and one
  token's logits computed once per batch, ``prefill_block_s`` per token and block, and
  attention per query head, element, block, and pair of (new token, earlier token), by KV
  type.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from lwlocal.memory.context_settings import Settings
from lwlocal.memory.model_shape import ModelShape


@dataclass(frozen=True)
class Speed:
    """This machine's measured constants, for one build, backend and thread count.

    ``attention``: per KV type (``f16``, ``q8_0``, ``q4_0``), the seconds of decode and of
    prefill per unit of attention work (query heads x head size x blocks x depth)."""

    key: str  # the machine, build and threads it holds for
    weight_bytes_per_s: float
    decode_block_s: float
    flops_per_s: float
    prefill_block_s: float
    attention: dict[str, tuple[float, float]]
    measured_at: str = ""
    seconds: float = 0.0  # what measuring took

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def weights_read(shape: ModelShape) -> int:
    """Bytes of weights a token reads: every block and the output layer (one row of the
    token embeddings aside)."""
    return sum(shape.layer_bytes) + shape.output_bytes


def block_params(shape: ModelShape) -> int:
    """Weights a prompt token is multiplied by: attention and feed-forward of every block (a
    gated feed-forward: three matrices). The output layer multiplies the batch's last token
    alone (llama.cpp computes only the logits asked for)."""
    q = shape.n_heads * shape.head_dim
    kv = shape.n_kv_heads * shape.head_dim
    return shape.n_layers * (shape.n_embd * (2 * q + 2 * kv) + 3 * shape.n_embd * shape.n_ff)


def _attention_unit(shape: ModelShape) -> int:
    return shape.n_layers * shape.n_heads * shape.head_dim


def _attention(speed: Speed, kv_type: str) -> tuple[float, float]:
    return speed.attention.get(kv_type) or speed.attention["f16"]


def decode_seconds(shape: ModelShape, s: Settings, speed: Speed, depth: int) -> float:
    """Seconds to generate one token with ``depth`` tokens already in the context."""
    per_depth = _attention(speed, s.kv_type)[0] * _attention_unit(shape)
    return (shape.n_layers * speed.decode_block_s + weights_read(shape) / speed.weight_bytes_per_s
            + per_depth * depth)


def prefill_seconds(shape: ModelShape, s: Settings, speed: Speed, start: int, n: int) -> float:
    """Seconds to evaluate ``n`` prompt tokens after ``start`` tokens of context, in batches
    of ``s.n_batch``."""
    if n <= 0:
        return 0.0
    batches = math.ceil(n / max(1, s.n_batch))
    pairs = n * start + n * (n - 1) / 2  # (new token, earlier token) pairs attended
    per_pair = _attention(speed, s.kv_type)[1] * _attention_unit(shape)
    output = 2 * shape.n_embd * shape.n_vocab  # one token's logits per batch
    return (n * (shape.n_layers * speed.prefill_block_s + 2 * block_params(shape)
                 / speed.flops_per_s)
            + batches * (weights_read(shape) / speed.weight_bytes_per_s
                         + output / speed.flops_per_s) + per_pair * pairs)


def decode_rate(shape: ModelShape, s: Settings, speed: Speed, depth: int) -> float:
    """Tokens per second generated at ``depth``."""
    return 1 / decode_seconds(shape, s, speed, depth)


def prefill_rate(shape: ModelShape, s: Settings, speed: Speed, depth: int) -> float:
    """Prompt tokens per second evaluated in one full batch after ``depth`` tokens."""
    n = max(1, s.n_batch)
    return n / prefill_seconds(shape, s, speed, depth, n)
