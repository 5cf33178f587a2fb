"""`quantize_gptq` on a GPU: a random 1.17B Llama (SmolLM2's tokenizer) quantized to 4 bits
(group 128, 32 chunks of 512 tokens) and timed; then a small Llama whose layers matter (as
tests/test_gptq.py builds them) quantized on the GPU and reloaded with transformers on the GPU
(GPTQModel's torch kernel) and on the CPU, mean KL divergence from its source for each.

Needs torch with CUDA and the [gptq] extra. Run on the lent H200 (no internet there) with the
extra's wheels carried and `tokenizer.json`/`tokenizer_config.json` of the default model's HF
reconstruction in TOKENIZER_DIR:

    python benchmarks/gptq_gpu.py TOKENIZER_DIR
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch
import transformers

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lwlocal.quant.calibration import read_text
from lwlocal.quant.gptq import GptqRequest, quantize_gptq
from tests.support.checkpoints import make_layers_matter


def random_llama(folder: Path, tokenizer_dir: Path, hidden: int, intermediate: int,
                 layers: int, heads: int, kv_heads: int) -> Path:
    config = transformers.LlamaConfig(
        vocab_size=49152, hidden_size=hidden, intermediate_size=intermediate,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
        max_position_embeddings=4096, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
    model = transformers.LlamaForCausalLM(config)
    make_layers_matter(model, 0)
    model.save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tokenizer_dir / name, folder / name)
    return folder


def kld(reference: torch.Tensor, model: transformers.PreTrainedModel, ids: torch.Tensor) -> float:
    with torch.no_grad():
        logq = model(ids).logits[0].float().cpu().log_softmax(-1)
    return float((reference.exp() * (reference - logq)).sum(-1).mean())


def main() -> None:
    tokenizer_dir = Path(sys.argv[1])
    text, label = read_text(None, "longform")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        big = random_llama(work / "big", tokenizer_dir, 2048, 8192, 16, 32, 8)
        made = quantize_gptq(GptqRequest(big, work / "big-q", 4, 128), text, label)
        print("1.17B quantize", json.dumps(made.as_dict()), flush=True)
        small = random_llama(work / "small", tokenizer_dir, 256, 512, 4, 4, 2)
        quantize_gptq(GptqRequest(small, work / "small-q", 4, 32, samples=16, seq_len=256),
                      text, label)
        tokenizer = transformers.AutoTokenizer.from_pretrained(small)
        ids = torch.tensor([tokenizer(text[:3000])["input_ids"][:256]])
        source = transformers.AutoModelForCausalLM.from_pretrained(small, dtype=torch.float32)
        with torch.no_grad():
            reference = source(ids).logits[0].float().log_softmax(-1)
        cpu = transformers.AutoModelForCausalLM.from_pretrained(
            work / "small-q", dtype=torch.float32, device_map="cpu")
        gpu = transformers.AutoModelForCausalLM.from_pretrained(
            work / "small-q", dtype=torch.float16, device_map="cuda",
            quantization_config=transformers.GPTQConfig(bits=4, backend="gptq_torch"))
        print("small KLD cpu", round(kld(reference, cpu, ids), 4),
              "gpu", round(kld(reference, gpu, ids.cuda()), 4))


if __name__ == "__main__":
    main()
