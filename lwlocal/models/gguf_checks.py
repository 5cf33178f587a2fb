"""Checks of a GGUF beyond its header: ``check_vocabulary`` checks what llama.cpp's vocabulary
loader asserts on (a C abort cannot be caught), so it runs before every llama.cpp load;
``check_model`` adds the metadata lwlocal's planner reads. Each is made once per process and
version of the file; what fails is one line, ``FILE: not a valid GGUF (why)``."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from lwlocal.models.gguf_file import check_gguf, file_version, read_gguf_version
from lwlocal.models.gguf_header import GGUFArray, InvalidGGUF, Scalar
from lwlocal.util.errors import LwlocalError

if TYPE_CHECKING:
    from gguf import GGUFValueType

MAX_LAYERS = 512  # LLAMA_MAX_LAYERS
# trained context, tokens: llama.cpp reads it as a signed 32-bit number, and llama-cpp-python
# sizes a buffer of that many tokens for every tokenization (64 MiB here; the longest models
# trained so far take 10M)
MAX_CONTEXT = 2**24


def check_vocabulary(path: Path) -> None:
    """Refuse, in one line, a vocabulary llama.cpp's loader would abort on or read past: run
    before llama.cpp loads the file. Checked once per process and version of the file."""
    _check_vocabulary(file_version(path))


@functools.lru_cache(maxsize=8)
def _check_vocabulary(version: tuple[Path, int, int, int, int]) -> None:
    path = version[0]
    try:
        _vocabulary_problems(read_gguf_version(version).fields)
    except InvalidGGUF as exc:
        raise LwlocalError(f"{path}: not a valid GGUF ({exc})") from exc


def _vocabulary_problems(fields: dict[str, Scalar | GGUFArray]) -> None:
    from gguf import GGUFValueType, Keys

    model = fields.get(Keys.Tokenizer.MODEL)
    if not isinstance(model, str):
        raise InvalidGGUF(f"{Keys.Tokenizer.MODEL} is missing or not a string")
    if model in ("no_vocab", "none"):
        return
    tokens = _array(fields, Keys.Tokenizer.LIST, (GGUFValueType.STRING,), required=True)
    assert tokens is not None and isinstance(tokens.values, list)
    if not tokens.values:
        raise InvalidGGUF(f"{Keys.Tokenizer.LIST} is empty")
    seen: dict[bytes, int] = {}
    for index, raw in enumerate(tokens.values):
        # as llama.cpp reads it: a C string (up to a NUL), an empty one named by its index
        text = raw.partition(b"\0")[0] or f"[EMPTY_{index}]".encode()
        if (first := seen.setdefault(text, index)) != index:
            shown = text.decode("utf-8", errors="backslashreplace")
            raise InvalidGGUF(f"tokens {first} and {index} are both {shown!r}")
    for key, kinds in ((Keys.Tokenizer.SCORES, (GGUFValueType.FLOAT32, GGUFValueType.INT32)),
                       (Keys.Tokenizer.TOKEN_TYPE, (GGUFValueType.INT32,))):
        array = _array(fields, key, kinds)
        if array is not None and len(array) < len(tokens):
            raise InvalidGGUF(f"{key} has {len(array)} entries for {len(tokens)} tokens")
    _array(fields, Keys.Tokenizer.MERGES, (GGUFValueType.STRING,), required=model == "gpt2")


def _array(fields: dict[str, Scalar | GGUFArray], key: str, kinds: tuple[GGUFValueType, ...],
           required: bool = False) -> GGUFArray | None:
    """The array ``key``, refused unless its elements are one of ``kinds``."""
    value = fields.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, GGUFArray) or value.item_type not in kinds:
        names = " or ".join(kind.name.lower() for kind in kinds)
        raise InvalidGGUF(f"{key} is {'missing' if value is None else 'not'} an array of "
                          f"{names}")
    return value


def check_model(path: Path) -> None:
    """Refuse, in one line, a GGUF that is not a model lwlocal can plan and llama.cpp can
    load: a sound header and vocabulary, the architecture's sizes as positive integers, and
    each block's tensors within its block count."""
    check_gguf(path)
    check_vocabulary(path)
    _check_model(file_version(path))


@functools.lru_cache(maxsize=8)
def _check_model(version: tuple[Path, int, int, int, int]) -> None:
    from gguf import Keys

    path, header = version[0], read_gguf_version(version)
    fields = header.fields
    try:
        arch = fields.get(Keys.General.ARCHITECTURE)
        if not isinstance(arch, str) or not arch:
            raise InvalidGGUF(f"{Keys.General.ARCHITECTURE} is missing or not a string")
        sizes = {key.format(arch=arch): limit for key, limit in (
            (Keys.LLM.CONTEXT_LENGTH, MAX_CONTEXT), (Keys.LLM.BLOCK_COUNT, MAX_LAYERS),
            (Keys.LLM.EMBEDDING_LENGTH, None), (Keys.LLM.FEED_FORWARD_LENGTH, None),
            (Keys.Attention.HEAD_COUNT, None))}
        for key, limit in sizes.items():
            value = fields.get(key)
            if type(value) is not int or value <= 0 or (limit and value > limit):
                raise InvalidGGUF(f"{key} is {value!r}, not a positive whole number"
                                  + (f" up to {limit}" if limit else ""))
        blocks = int(fields[Keys.LLM.BLOCK_COUNT.format(arch=arch)])  # type: ignore[arg-type]
        for tensor in header.tensors:
            part = tensor.name.split(".")
            if part[0] == "blk" and not (len(part) > 2 and part[1].isascii()
                                         and part[1].isdigit()
                                         and int(part[1]) < blocks):
                raise InvalidGGUF(f"tensor {tensor.name!r} is outside the {blocks} blocks")
        if not any(t.name.startswith("token_embd.") for t in header.tensors):
            raise InvalidGGUF("it has no token_embd tensor")
    except InvalidGGUF as exc:
        raise LwlocalError(f"{path}: not a valid GGUF ({exc})") from exc
