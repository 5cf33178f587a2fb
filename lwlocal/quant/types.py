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

# Nominal bits per weight of llama.cpp's file types, for planning before download. Mixes such as
# Q4_K_M keep some tensors at a higher type; a GGUF file gives exact sizes instead.
NOMINAL_BPW = {
    "F32": 32.0, "F16": 16.0, "BF16": 16.0, "Q8_0": 8.5, "Q6_K": 6.56, "Q5_K_M": 5.69,
    "Q5_K_S": 5.54, "Q5_0": 5.5, "Q5_1": 6.0, "Q4_K_M": 4.89, "Q4_K_S": 4.58, "Q4_0": 4.5,
    "Q4_1": 5.0, "IQ4_XS": 4.25, "IQ4_NL": 4.5, "Q3_K_L": 4.27, "Q3_K_M": 3.91, "Q3_K_S": 3.5,
    "IQ3_M": 3.66, "IQ3_S": 3.44, "IQ3_XXS": 3.06, "Q2_K": 2.96, "IQ2_M": 2.7, "IQ2_S": 2.5,
    "IQ2_XS": 2.31, "IQ2_XXS": 2.06, "IQ1_M": 1.75, "IQ1_S": 1.56,
}


def quant_type(name: str) -> tuple[str, int]:
    """The canonical name and llama.cpp file type of ``name`` (any case)."""
    key = ALIASES.get(name.upper(), name.upper())
    if key not in QUANT_TYPES:
        raise LwlocalError(f"unknown quant type {name!r}; valid types: {', '.join(QUANT_TYPES)}")
    return key, QUANT_TYPES[key]
