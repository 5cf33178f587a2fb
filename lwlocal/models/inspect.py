"""What a model file holds: a GGUF's metadata and tensor types, or an HF checkpoint's
architecture, size and what ``convert`` would make of it."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

from lwlocal.models.gguf_file import check_gguf, gguf_metadata, read_gguf
from lwlocal.util.errors import LwlocalError

GGUF_KEYS = ("general.name", "general.architecture", "general.file_type", "context_length",
             "block_count", "embedding_length", "feed_forward_length", "attention.head_count",
             "attention.head_count_kv", "rope.freq_base", "rope.dimension_count",
             "tokenizer.ggml.model", "tokenizer.ggml.pre")


def inspect_gguf(path: Path) -> dict[str, Any]:
    check_gguf(path)
    meta = gguf_metadata(path)
    arch = meta.get("general.architecture")
    info: dict[str, Any] = {"path": str(path), "format": "gguf", "size_bytes": path.stat().st_size}
    for key in GGUF_KEYS:
        full = key if key.startswith(("general.", "tokenizer.")) else f"{arch}.{key}"
        if full in meta:
            info[key] = meta[full]
    tensors = read_gguf(path).tensors
    info["tensors"] = len(tensors)
    info["tensor_types"] = dict(Counter(t.tensor_type.name for t in tensors).most_common())
    info["parameters"] = int(sum(int(t.n_elements) for t in tensors))
    info["chat_template"] = meta.get("tokenizer.chat_template")
    return info


def inspect_checkpoint(folder: Path) -> dict[str, Any]:
    from lwlocal.convert.run import architecture_of, default_outtype
    from lwlocal.convert.safetensors_source import Checkpoint

    checkpoint = Checkpoint(folder)
    config = checkpoint.config
    info: dict[str, Any] = {
        "path": str(folder), "format": "huggingface",
        "architectures": config.get("architectures"),
        "parameters": int(sum(math.prod(t.shape) for t in checkpoint)),
        "dtype": checkpoint.source_dtype,
        "size_bytes": int(sum(t.nbytes for t in checkpoint)),
        "tensors": len(checkpoint.tensors),
    }
    try:
        arch = architecture_of(checkpoint)
    except LwlocalError as exc:
        info["convert"] = f"not convertible: {exc}"
        return info
    skipped = [t.name for t in checkpoint if arch.gguf_name(t.name) is None]
    info["convert"] = (f"GGUF architecture {arch.gguf_arch}, default outtype "
                       f"{default_outtype(checkpoint.source_dtype)}, "
                       f"{len(checkpoint.tensors) - len(skipped)} tensors"
                       + (f" ({len(skipped)} skipped)" if skipped else "")
                       + ("" if (folder / "tokenizer.json").is_file()
                          else "; no tokenizer.json: convert will refuse"))
    return info


def inspect_path(path: Path) -> dict[str, Any]:
    """Inspect a GGUF file or an HF checkpoint folder."""
    if path.is_dir():
        return inspect_checkpoint(path)
    return inspect_gguf(path)
