"""Hugging Face checkpoints -> GGUF, without torch: one module per architecture family, a
shared safetensors reader, tokenizer conversion, and the streaming writer in ``run``."""
