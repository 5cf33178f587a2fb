"""A GGUF turned back into a Hugging Face checkpoint by transformers (``[hf]`` extra): real
weights and a real tokenizer to check and benchmark the converter with, offline."""

from __future__ import annotations

from pathlib import Path


def checkpoint_from_gguf(gguf_path: Path, folder: Path) -> Path:
    """Write ``gguf_path``'s weights (dequantized to f32) and tokenizer as an HF folder."""
    import torch
    import transformers

    kwargs = {"gguf_file": gguf_path.name}
    tokenizer = transformers.AutoTokenizer.from_pretrained(gguf_path.parent, **kwargs)
    loaded = transformers.AutoModelForCausalLM.from_pretrained(
        gguf_path.parent, dtype=torch.float32, **kwargs)
    config = loaded.config
    del config.quantization_config  # a plain f32 model: transformers will not save a GGUF one
    plain = type(loaded)(config)
    plain.load_state_dict(loaded.state_dict())
    plain.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
