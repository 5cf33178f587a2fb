"""A Hugging Face ``tokenizer.json`` (byte-level BPE: Llama 3, SmolLM2) as GGUF vocabulary."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

import gguf

from lwlocal.convert.tiktoken_vocab import load_tiktoken_vocabulary
from lwlocal.convert.vocabulary import Vocabulary, apply_defaults
from lwlocal.families import architectures
from lwlocal.families.base import Architecture
from lwlocal.util.errors import LwlocalError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

# llama.cpp tells pre-tokenizers apart by hashing the ids a tokenizer gives this text (the
# families list the hashes: ``Architecture.bpe_hashes``).
CHECK_TEXT = (
    "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis "
    "concatenated) ✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 "
    "កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= нещо на Български "
    "''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not "
    "sure I'll make it, 'D you like some tea? We'Ve a'lL"
)


def pre_tokenizer(folder: Path, tokenizer: Tokenizer, arch: Architecture) -> str:
    """llama.cpp's name for the tokenizer's pre-tokenizer, by hash (any family's), else by its
    definition (``arch``'s split regex)."""
    ids = tokenizer.encode(CHECK_TEXT, add_special_tokens=True).ids
    digest = hashlib.sha256(str(ids).encode()).hexdigest()
    by_hash = {digest: name for layout in architectures().values()
               for digest, name in layout.bpe_hashes.items()}
    if digest in by_hash:
        return by_hash[digest]
    definition = json.dumps(json.loads((folder / "tokenizer.json").read_text())["pre_tokenizer"])
    if arch.bpe_split.replace("\\", "\\\\") in definition:
        return arch.bpe_pre
    if '"Digits"' in definition and '"ByteLevel"' in definition:
        return "smollm"
    known = ", ".join(sorted(set(by_hash.values())))
    raise LwlocalError(f"{folder / 'tokenizer.json'}: pre-tokenizer not recognised (hash "
                       f"{digest[:12]}…); supported: {known}")


def load_vocabulary(folder: Path, vocab_size: int, arch: Architecture) -> Vocabulary:
    """Tokens, token types, merges, special ids and chat template: from a tokenizer.json, or
    a tiktoken tokenizer.model where the family ships one; the architecture's special tokens
    fill in what the tokenizer files leave unset."""
    from tokenizers import Tokenizer

    path = folder / "tokenizer.json"
    if not path.is_file():
        if (folder / "tokenizer.model").is_file() and arch.tiktoken_specials:
            return load_tiktoken_vocabulary(folder, vocab_size, arch)
        raise LwlocalError(f"{folder}: has no tokenizer.json; it is needed to convert")
    try:
        tokenizer = Tokenizer.from_file(str(path))
        added = json.loads(path.read_text(encoding="utf-8")).get("added_tokens", [])
    except Exception as exc:  # tokenizers raises its own exception types
        raise LwlocalError(f"{path}: unreadable tokenizer ({exc})") from exc
    by_id = {i: t for t, i in tokenizer.get_vocab(with_added_tokens=True).items()}
    if by_id and max(by_id) >= vocab_size:
        raise LwlocalError(f"{path}: token ids up to {max(by_id)} do not fit config.json's "
                           f"vocabulary of {vocab_size}")
    added_special = {entry["id"]: entry.get("special", False) for entry in added}
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added_special:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.CONTROL if added_special[i]
                         else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.NORMAL)
    special = gguf.SpecialVocab(folder, load_merges=True, n_vocab=vocab_size)
    apply_defaults(special, tokenizer.get_vocab(with_added_tokens=True), arch)
    pre = pre_tokenizer(folder, tokenizer, arch)
    return Vocabulary(tokens, [int(t) for t in types], pre, special)


def add_vocabulary(writer: gguf.GGUFWriter, vocab: Vocabulary) -> None:
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.types)
    vocab.special.add_to_gguf(writer)
