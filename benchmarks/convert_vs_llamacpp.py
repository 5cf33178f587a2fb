"""lwlocal convert vs llama.cpp's convert_hf_to_gguf.py: wall time, peak RSS, tensor data.

Both convert the same checkpoints to f16, one after the other, each in its own process timed by
/usr/bin/time: the default model turned back into an f32 HF checkpoint (538 MB, real weights and
tokenizer) and a synthetic f32 Llama of about 2.4 GB (random weights, the same tokenizer). The
reference is the llama.cpp that llama-cpp-python's source distribution vendors (downloaded from
the package registry unless --llama-cpp names a llama.cpp checkout); it needs torch,
transformers and sentencepiece: `pip install -e '.[hf]' sentencepiece`.

    .venv/bin/python benchmarks/convert_vs_llamacpp.py [--work DIR] [--llama-cpp DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
from importlib.metadata import version
from pathlib import Path

import numpy as np
from gguf import GGUFReader

from lwlocal.models.catalogue import embedded_model_path
from tests.support.reference import checkpoint_from_gguf

SYNTHETIC = {"hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 8,
             "num_attention_heads": 16, "num_key_value_heads": 4}


def vendored_llama_cpp(work: Path) -> Path:
    """llama.cpp as vendored in the installed llama-cpp-python's source distribution."""
    wanted = version("llama-cpp-python")
    target = work / f"llama_cpp_python-{wanted}" / "vendor" / "llama.cpp"
    if not target.is_dir():
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary",
                        ":all:", "-d", str(work), f"llama-cpp-python=={wanted}"], check=True)
        with tarfile.open(next(work.glob(f"llama_cpp_python-{wanted}.tar.gz"))) as archive:
            archive.extractall(work, filter="data")
    return target


def smollm_checkpoint(work: Path) -> Path:
    folder = work / "smollm2-f32"
    if not (folder / "model.safetensors").is_file():
        checkpoint_from_gguf(embedded_model_path(), folder)
    return folder


def synthetic_checkpoint(work: Path, tokenizer_from: Path) -> Path:
    """A random f32 Llama of ~2.4 GB with the default model's tokenizer."""
    from safetensors.numpy import save_file

    folder = work / "synthetic-llama-f32"
    if (folder / "model.safetensors").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    config = json.loads((tokenizer_from / "config.json").read_text())
    config.update(SYNTHETIC, tie_word_embeddings=False, head_dim=128)
    (folder / "config.json").write_text(json.dumps(config))
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (tokenizer_from / name).is_file():
            shutil.copy(tokenizer_from / name, folder / name)
    rng = np.random.default_rng(0)
    h, f, v = SYNTHETIC["hidden_size"], SYNTHETIC["intermediate_size"], config["vocab_size"]
    kv = SYNTHETIC["num_key_value_heads"] * 128

    def rand(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape, dtype=np.float32) * 0.02

    tensors = {"model.embed_tokens.weight": rand(v, h), "lm_head.weight": rand(v, h),
               "model.norm.weight": np.ones(h, np.float32)}
    for i in range(SYNTHETIC["num_hidden_layers"]):
        p = f"model.layers.{i}."
        tensors |= {p + "self_attn.q_proj.weight": rand(h, h), p + "self_attn.k_proj.weight":
                    rand(kv, h), p + "self_attn.v_proj.weight": rand(kv, h),
                    p + "self_attn.o_proj.weight": rand(h, h), p + "mlp.gate_proj.weight":
                    rand(f, h), p + "mlp.up_proj.weight": rand(f, h),
                    p + "mlp.down_proj.weight": rand(h, f),
                    p + "input_layernorm.weight": np.ones(h, np.float32),
                    p + "post_attention_layernorm.weight": np.ones(h, np.float32)}
    save_file(tensors, str(folder / "model.safetensors"))
    return folder


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS bytes of a command, from /usr/bin/time."""
    proc = subprocess.run(["/usr/bin/time", "-f", "TIME %e %M", *command], capture_output=True,
                          text=True, env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed:\n{proc.stderr[-2000:]}")
    line = next(x for x in proc.stderr.splitlines()[::-1] if x.startswith("TIME "))
    _, seconds, kib = line.split()
    return float(seconds), int(kib) * 1024


def identical_tensors(a: Path, b: Path) -> tuple[int, int]:
    """How many tensors of ``a`` are in ``b`` with the same name, type and bytes; of how many."""
    theirs = {t.name: t for t in GGUFReader(b).tensors}
    ours = GGUFReader(a).tensors
    same = sum(1 for t in ours if t.name in theirs
               and t.tensor_type == theirs[t.name].tensor_type
               and np.array_equal(np.asarray(t.data).view(np.uint8),
                                  np.asarray(theirs[t.name].data).view(np.uint8)))
    return same, max(len(ours), len(theirs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/lwlocal-convert-bench"))
    parser.add_argument("--llama-cpp", type=Path, help="llama.cpp checkout (default: vendored)")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    llama_cpp = args.llama_cpp or vendored_llama_cpp(args.work)
    smollm = smollm_checkpoint(args.work)
    sources = {"smollm2-135m f32 (538 MB)": smollm,
               "synthetic llama f32 (2.4 GB)": synthetic_checkpoint(args.work, smollm)}
    rows = []
    for label, folder in sources.items():
        ours, theirs = args.work / "lwlocal.gguf", args.work / "llamacpp.gguf"
        t_ours, rss_ours = timed([sys.executable, "-m", "lwlocal", "convert", str(folder), "-o",
                                  str(ours), "--outtype", "f16"])
        t_ref, rss_ref = timed([sys.executable, str(llama_cpp / "convert_hf_to_gguf.py"),
                                str(folder), "--outfile", str(theirs), "--outtype", "f16"],
                               env={"PYTHONPATH": str(llama_cpp / "gguf-py")})
        same, total = identical_tensors(ours, theirs)
        row = {"source": label, "lwlocal_s": t_ours, "llamacpp_s": t_ref,
               "time_ratio": round(t_ours / t_ref, 3), "lwlocal_rss_mib": rss_ours >> 20,
               "llamacpp_rss_mib": rss_ref >> 20, "rss_ratio": round(rss_ours / rss_ref, 3),
               "identical_tensors": f"{same}/{total}"}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("goals: time_ratio <= 1.0, rss_ratio <= 0.5, every tensor identical")


if __name__ == "__main__":
    main()
