"""A GGUF vocabulary as the converter's tokenizer readers give it (tokenizer.json or a tiktoken
tokenizer.model), and the family's special tokens where the files leave them unset."""

from __future__ import annotations

from dataclasses import dataclass

import gguf

from lwlocal.families.base import Architecture


@dataclass
class Vocabulary:
    """Everything the GGUF tokenizer keys need."""

    tokens: list[str]
    types: list[int]
    pre: str
    special: gguf.SpecialVocab


def apply_defaults(special: gguf.SpecialVocab, ids: dict[str, int], arch: Architecture) -> None:
    """The architecture's special tokens where the tokenizer files leave them unset."""
    for kind, text in arch.special_tokens.items():
        if kind not in special.special_token_ids and text in ids:
            special.special_token_ids[kind] = ids[text]
    if arch.add_bos is not None:
        special.add_special_token["bos"] = arch.add_bos
