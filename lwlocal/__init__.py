"""lwlocal: ultra-long text generation with LongWriter models on llama.cpp, offline."""

__version__ = "0.1.0"
