"""GGUF quantization through llama.cpp's quantizer, importance matrices, and quant quality."""
