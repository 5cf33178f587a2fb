"""Running a GGUF: the llama.cpp engine, chat backends and prompt formats."""
