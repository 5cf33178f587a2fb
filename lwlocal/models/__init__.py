"""The model catalogue: cards, GGUF files and their metadata, the hub."""
