"""What a model file holds: a GGUF's metadata and tensor types, or an HF checkpoint's
architecture, size and what ``convert`` would make of it."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

from gguf import Keys

from lwlocal.families import architecture_for
from lwlocal.models.gguf_file import check_gguf, gguf_metadata, read_gguf
from lwlocal.util.errors import LwlocalError

# what ``inspect`` shows of a GGUF's metadata, by the names it shows
GGUF_KEYS = {
    "general.name": Keys.General.NAME, "general.architecture": Keys.General.ARCHITECTURE,
    "general.file_type": Keys.General.FILE_TYPE, "context_length": Keys.LLM.CONTEXT_LENGTH,
    "block_count": Keys.LLM.BLOCK_COUNT, "embedding_length": Keys.LLM.EMBEDDING_LENGTH,
    "feed_forward_length": Keys.LLM.FEED_FORWARD_LENGTH,
    "attention.head_count": Keys.Attention.HEAD_COUNT,
    "attention.head_count_kv": Keys.Attention.HEAD_COUNT_KV,
    "rope.freq_base": Keys.Rope.FREQ_BASE, "rope.dimension_count": Keys.Rope.DIMENSION_COUNT,
    "tokenizer.ggml.model": Keys.Tokenizer.MODEL, "tokenizer.ggml.pre": Keys.Tokenizer.PRE,
}


def inspect_gguf(path: Path) -> dict[str, Any]:
    check_gguf(path)
    meta = gguf_metadata(path)
    arch = meta.get(Keys.General.ARCHITECTURE)
    info: dict[str, Any] = {"path": str(path), "format": "gguf", "size_bytes": path.stat().st_size}
    for shown, template in GGUF_KEYS.items():
        if (key := template.format(arch=arch)) in meta:
            info[shown] = meta[key]
    tensors = read_gguf(path).tensors
    info["tensors"] = len(tensors)
    info["tensor_types"] = dict(Counter(t.tensor_type.name for t in tensors).most_common())
    info["parameters"] = int(sum(int(t.n_elements) for t in tensors))
    info["chat_template"] = meta.get(Keys.Tokenizer.CHAT_TEMPLATE)
    return info


def inspect_checkpoint(folder: Path) -> dict[str, Any]:
    from lwlocal.convert.run import default_outtype
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
        arch = architecture_for(config, folder / "config.json")
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
