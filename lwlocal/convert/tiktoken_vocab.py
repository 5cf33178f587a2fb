"""A tiktoken ``tokenizer.model`` (GLM-4's ChatGLM4Tokenizer, as LongWriter-glm4-9b ships it) as
a GGUF byte-level BPE vocabulary, the way llama.cpp loads GLM-4.

The file holds ``base64(token bytes) rank`` lines; BPE merges are not stored, so each token's
merge is found again by running BPE over its bytes with only lower-ranked tokens allowed.
The special tokens and their ids come from ``tokenizer_config.json``'s ``added_tokens_decoder``,
or, where it lists none, from the family's list that the tokenizer's code numbers after the
ranks.
"""

from __future__ import annotations

import json
from pathlib import Path

import gguf

from lwlocal.convert.vocabulary import Vocabulary, apply_defaults
from lwlocal.families.base import Architecture
from lwlocal.families.byte_bpe import byte_to_unicode, merges_of, read_ranks
from lwlocal.util.errors import LwlocalError


def load_tiktoken_vocabulary(folder: Path, vocab_size: int, arch: Architecture) -> Vocabulary:
    """Tokens, types, merges and special ids of a tiktoken tokenizer (GLM-4's)."""
    ranks = read_ranks(folder / "tokenizer.model")
    config_path = folder / "tokenizer_config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        added = {int(i): entry for i, entry in config.get("added_tokens_decoder", {}).items()}
    except (OSError, json.JSONDecodeError, ValueError) as exc:
        raise LwlocalError(f"{config_path}: needed for the special tokens ({exc})") from exc
    if not added:
        added = {len(ranks) + i: {"content": text}
                 for i, text in enumerate(arch.tiktoken_specials)}
    to_text = byte_to_unicode()

    def text(token: bytes) -> str:
        return "".join(to_text[b] for b in token)

    tokens = [f"[PAD{i}]" for i in range(vocab_size)]
    types = [int(gguf.TokenType.UNUSED)] * vocab_size
    for token, rank in ranks.items():
        if not 0 <= rank < vocab_size:
            raise LwlocalError(f"{folder / 'tokenizer.model'}: rank {rank} does not fit "
                               f"config.json's vocabulary of {vocab_size}")
        tokens[rank], types[rank] = text(token), int(gguf.TokenType.NORMAL)
    merges = [f"{text(a)} {text(b)}" for a, b in merges_of(ranks)]
    ids = {}
    for i, entry in added.items():
        if not 0 <= i < vocab_size:
            raise LwlocalError(f"{config_path}: special token id {i} does not fit config.json's "
                               f"vocabulary of {vocab_size}")
        tokens[i] = entry["content"]
        special = entry.get("special", True)
        types[i] = int(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
        ids[entry["content"]] = i
    special = gguf.SpecialVocab(folder, load_merges=False, n_vocab=vocab_size)
    special.merges = merges
    apply_defaults(special, ids, arch)
    return Vocabulary(tokens, types, arch.bpe_pre, special)
