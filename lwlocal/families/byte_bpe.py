"""Byte-level BPE pieces the families' tokenizers share: GPT-2's byte alphabet, tiktoken's rank
files and the merges they imply, Llama 3's split pattern (GLM-4's tiktoken tokenizer splits the
same), a pre-tokenizer splitting by a pattern."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import TYPE_CHECKING

from lwlocal.util.errors import LwlocalError

if TYPE_CHECKING:
    from tokenizers.pre_tokenizers import PreTokenizer

LLAMA3_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"
# The whole split pattern of Llama 3's pre-tokenizer; GLM-4's tiktoken tokenizer splits the same.
LLAMA3_PATTERN = LLAMA3_SPLIT + r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"


def byte_level_pre_tokenizer(pattern: str) -> PreTokenizer:
    """A byte-level BPE's pre-tokenizer for ``tokenizers`` (Llama 3's with ``LLAMA3_PATTERN``):
    the split by ``pattern``, then byte-level."""
    from tokenizers import Regex, pre_tokenizers

    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])


def byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable characters (byte-level BPE's alphabet)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    mapping, extra = {}, 0
    for b in range(256):
        if b in printable:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def read_ranks(path: Path) -> dict[bytes, int]:
    ranks = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token, validate=True)] = int(rank)
        except ValueError as exc:
            raise LwlocalError(f"{path}: line {n} is not 'base64-token rank'") from exc
    return ranks


def bpe_parts(ranks: dict[bytes, int], token: bytes, max_rank: int) -> list[bytes]:
    """Byte-pair merges of ``token`` using only tokens ranked below ``max_rank``."""
    parts = [bytes([b]) for b in token]
    while True:
        best: tuple[int, int] | None = None
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and rank < max_rank and (best is None or rank < best[1]):
                best = (i, rank)
        if best is None:
            return parts
        i = best[0]
        parts = [*parts[:i], parts[i] + parts[i + 1], *parts[i + 2:]]


def merges_of(ranks: dict[bytes, int]) -> list[tuple[bytes, bytes]]:
    """The merge that makes each multi-byte token, in rank order (tokens that BPE over lower
    ranks does not build from exactly one pair have none: a merge is one pair)."""
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        if len(token) > 1:
            parts = bpe_parts(ranks, token, rank)
            if len(parts) == 2:
                merges.append((parts[0], parts[1]))
    return merges
