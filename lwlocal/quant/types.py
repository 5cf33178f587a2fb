"""The quant types llama.cpp's quantizer offers, by the names ``llama-quantize`` uses."""

from __future__ import annotations

import llama_cpp

from lwlocal.util.errors import LwlocalError

_PREFIXES = ("LLAMA_FTYPE_MOSTLY_", "LLAMA_FTYPE_ALL_")
_NOT_TARGETS = {"GUESSED", "NVFP4"}  # not offered by llama-quantize either
ALIASES = {"Q3_K": "Q3_K_M", "Q4_K": "Q4_K_M", "Q5_K": "Q5_K_M"}  # as llama-quantize

QUANT_TYPES: dict[str, int] = {
    name.removeprefix(prefix): value
    for name, value in sorted(vars(llama_cpp).items(), key=lambda kv: repr(kv[1]).zfill(4))
    for prefix in _PREFIXES
    if name.startswith(prefix) and isinstance(value, int)
    and name.removeprefix(prefix) not in _NOT_TARGETS
}

# Types whose main tensors llama.cpp refuses to make without an importance matrix
# (llama-quant.cpp's tensor_requires_imatrix over each type's default tensor type).
NEEDS_IMATRIX = frozenset({"IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ3_XXS",
                           "Q2_K_S"})
# Types that are not quantized (bits for bits), and the GGUF tensor types that are not either.
UNQUANTIZED = frozenset({"F32", "F16", "BF16"})


def quant_type(name: str) -> tuple[str, int]:
    """The canonical name and llama.cpp file type of ``name`` (any case)."""
    key = ALIASES.get(name.upper(), name.upper())
    if key not in QUANT_TYPES:
        raise LwlocalError(f"unknown quant type {name!r}; valid types: {', '.join(QUANT_TYPES)}")
    return key, QUANT_TYPES[key]
