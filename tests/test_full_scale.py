"""Checkpoints of the LongWriter models' full width (vocabulary, hidden and FFN sizes) with two
layers, made by benchmarks/synth_checkpoint.py: conversion in bounded memory, the real models'
metadata, the planner's sizes against the file, and bad input at that scale.

The weights are zero in sparse shards (instant to write; memory and time do not depend on the
values); the tokenizers have the real vocabulary's size and special tokens."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gguf
import pytest

from benchmarks.synth_checkpoint import ORDINARY, SPECIALS, synthesize
from lwlocal.convert.run import CHUNK_BYTES
from lwlocal.families import architecture_for
from lwlocal.memory.model_shape import shape_from_gguf
from lwlocal.models.catalogue import CARDS
from lwlocal.models.gguf_file import read_gguf
from lwlocal.models.gguf_header import GGUFArray, GGUFFile
from tests.support.peak import Measured, run_measured
from tests.support.small_disk import small_disk as disk_of

MiB = 2**20
LAYERS = 2
CARD_NAMES = ("longwriter-glm4-9b", "longwriter-llama3.1-8b")
# What the real models' config.json files give beside the cards' shapes: rope base (GLM:
# 10000 × rope_ratio 500), norm epsilon, positions, and the eos token the GGUF names.
PUBLISHED = {
    "longwriter-glm4-9b": {"rope_base": 5_000_000.0, "eps": 1.5625e-07, "rotary": 64,
                           "eos": "<|endoftext|>"},
    "longwriter-llama3.1-8b": {"rope_base": 500_000.0, "eps": 1e-5, "rotary": 128,
                               "eos": "<|end_of_text|>"},
}
# Peak RSS of `lwlocal convert` above a process that loads and writes the same vocabulary and
# no tensor: what is in flight. A tensor is streamed a block of CHUNK_BYTES (32 MiB) of bf16
# source at a time, copied as read to the bf16 output, the block being written held while the
# next is read: 2 × CHUNK_BYTES. A tensor with a transform (Llama's attn_q and attn_k, rows
# reordered for llama.cpp's rope) is converted whole: its f32 load, the reordered f32 copy and
# the 8-byte integers of gguf's bf16 rounding, 16 bytes a value (256 MiB for attn_q, 4096 ×
# 4096). Both far below the largest tensor (151552 × 4096 in bf16: 1184 MiB) and the whole
# two-layer file (3146 MiB for GLM). The allocator adds its own slack above that, which
# differs between machines (blocks of CHUNK_BYTES are at glibc's largest mmap threshold, so one
# may come from the heap and stay there after it is freed). A quarter block is allowed for it,
# well under a third block in flight: 59 MiB above the baseline here, 64 MiB in a CI run.
STREAMED = 2 * CHUNK_BYTES
TRANSFORMED = 16  # bytes per value
ALLOCATOR = CHUNK_BYTES // 4


@pytest.fixture(scope="session")
def full_width(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both layouts, two layers, zero weights."""
    root = tmp_path_factory.mktemp("full-width")
    return {name: synthesize(CARDS[name], root / name, LAYERS, zeros=True) for name in CARD_NAMES}


def lwlocal(*args: str) -> list[str]:
    return [sys.executable, "-m", "lwlocal", *args]


VOCABULARY_ONLY = """
import lwlocal.cli  # what `python -m lwlocal` imports, so the two differ by the tensors only
import os, sys
from pathlib import Path
import gguf
from lwlocal.convert.safetensors_source import Checkpoint
from lwlocal.convert.tokenizer import add_vocabulary, load_vocabulary
from lwlocal.families import architecture_for
folder = Path(sys.argv[1])
checkpoint = Checkpoint(folder)
arch = architecture_for(checkpoint.config, folder / "config.json")
vocab = load_vocabulary(folder, arch.shape(checkpoint.config, print).vocab_size, arch)
writer = gguf.GGUFWriter(None, arch.gguf_arch)
add_vocabulary(writer, vocab)
writer.write_header_to_file(Path(os.devnull))
writer.write_kv_data_to_file()
"""  # what convert does but the tensors


def transformed_values(src: Path) -> int:
    """Values of the largest tensor the checkpoint's family converts whole (a transform)."""
    config = json.loads((src / "config.json").read_text())
    arch = architecture_for(config, src / "config.json")
    shapes = arch.tensor_shapes(arch.shape(config, lambda _: None))
    return max((math.prod(shape) for name, shape in shapes.items()
                if arch.transforms_tensor(name)), default=0)


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Each file's size and modification time."""
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


def tensor_spans(gguf_file: GGUFFile, size: int) -> dict[str, int]:
    """Bytes each tensor takes in the file: from its offset to the next one's (or the end)."""
    starts = sorted((t.offset, t.name) for t in gguf_file.tensors)
    ends = [start for start, _ in starts[1:]] + [size]
    return {name: end - start for (start, name), end in zip(starts, ends, strict=True)}


@pytest.fixture(scope="session")
def converted(full_width: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
              ) -> Callable[[str], tuple[Path, Measured]]:
    """A layout converted (to bf16, the default) by `lwlocal convert` in a child, measured:
    each on first use, so that a test process converts only the layouts its tests read."""
    root = tmp_path_factory.mktemp("converted")
    done: dict[str, tuple[Path, Measured]] = {}

    def convert(name: str) -> tuple[Path, Measured]:
        if name not in done:
            out = root / f"{name}.gguf"
            done[name] = out, run_measured(lwlocal("convert", str(full_width[name]), "-o",
                                                   str(out)))
        return done[name]
    return convert


@pytest.mark.parametrize("name", CARD_NAMES)
def test_full_width_conversion(full_width, converted, name):
    """Conversion of a full-width checkpoint (bf16, the default) holds a block of rows, not a
    tensor; the GGUF carries the real model's metadata; the planner's sizes are the file's."""
    card, src, (out, converted) = CARDS[name], full_width[name], converted(name)
    vocabulary = run_measured([sys.executable, "-c", VOCABULARY_ONLY, str(src)])
    assert vocabulary.status == 0, vocabulary.stderr
    assert converted.status == 0, converted.stderr
    gguf_file = read_gguf(out)
    largest = max(t.n_bytes for t in gguf_file.tensors)
    assert largest == card.vocab_size * card.hidden_size * 2  # bf16
    peak, baseline = converted.peak_rss, vocabulary.peak_rss
    allowed = max(STREAMED, TRANSFORMED * transformed_values(src)) + ALLOCATOR
    assert peak <= baseline + allowed, (
        f"peak {peak / MiB:.0f} MiB, vocabulary alone {baseline / MiB:.0f} MiB, allowed "
        f"{allowed / MiB:.0f} MiB more; the largest tensor is {largest / MiB:.0f} MiB")

    arch = card.architecture

    def field(key: str) -> Any:
        found = gguf_file.fields[key.format(arch=arch)]
        if isinstance(found, GGUFArray):
            return [v.decode() if isinstance(v, bytes) else v for v in found.values]
        return found

    K, A, R = gguf.Keys.LLM, gguf.Keys.Attention, gguf.Keys.Rope
    published = PUBLISHED[name]
    assert field(K.CONTEXT_LENGTH) == card.config_context
    assert field(K.EMBEDDING_LENGTH) == card.hidden_size
    assert field(K.FEED_FORWARD_LENGTH) == card.ffn_size
    assert field(K.BLOCK_COUNT) == LAYERS
    assert field(A.HEAD_COUNT) == card.n_heads
    assert field(A.HEAD_COUNT_KV) == card.n_kv_heads
    assert field(A.LAYERNORM_RMS_EPS) == pytest.approx(published["eps"], rel=1e-6)
    assert field(R.FREQ_BASE) == pytest.approx(published["rope_base"], rel=1e-6)
    assert field(R.DIMENSION_COUNT) == published["rotary"]
    tokens = field(gguf.Keys.Tokenizer.LIST)
    assert isinstance(tokens, list) and len(tokens) == card.vocab_size
    specials = SPECIALS[arch]
    first = ORDINARY[arch]
    assert tokens[first: first + len(specials)] == specials
    # every ordinary token but the 256 bytes is built by one merge
    assert len(field(gguf.Keys.Tokenizer.MERGES)) == first - 256
    assert tokens[field(gguf.Keys.Tokenizer.EOS_ID)] == published["eos"]
    if arch == "llama":  # llama3 rope scaling becomes a rope_freqs tensor
        assert "rope_freqs.weight" in {t.name for t in gguf_file.tensors}

    shape = shape_from_gguf(out)
    spans = tensor_spans(gguf_file, out.stat().st_size)
    layers = [sum(n for t, n in spans.items() if t.startswith(f"blk.{i}.")) for i in range(LAYERS)]
    assert shape.layer_bytes == tuple(layers)
    assert shape.input_bytes == spans["token_embd.weight"]
    assert shape.output_bytes == sum(spans.values()) - sum(layers) - shape.input_bytes
    assert (shape.n_layers, shape.n_vocab, shape.n_kv_heads) == (LAYERS, card.vocab_size,
                                                                 card.n_kv_heads)


def test_quantize_holds_rows_not_tensors(converted, tmp_path):
    """llama.cpp's quantizer, as lwlocal runs it, holds 64 MiB of rows at a time: peak RSS
    above a process that has only imported it is the tensor being read (mapped from the file,
    let go once done; the largest is the 1184 MiB bf16 embedding) and two 64 MiB allowances:
    the rows' f32 copy and output, and llama.cpp's copy of the GGUF's metadata (151552 tokens
    and their merges). With llama.cpp's default of 8 GiB the embedding alone took 2368 MiB
    more as f32."""
    src, _ = converted("longwriter-glm4-9b")
    baseline = run_measured([sys.executable, "-c", "import lwlocal.quant.quantize"])
    run = run_measured(lwlocal("quantize", str(src), "-o", str(tmp_path / "q8.gguf"),
                               "--type", "Q8_0"))
    assert run.status == 0, run.stderr
    largest = max(t.n_bytes for t in read_gguf(src).tensors)
    allowed = largest + 2 * 64 * MiB
    assert run.peak_rss <= baseline.peak_rss + allowed, (
        f"peak {run.peak_rss / MiB:.0f} MiB, import alone {baseline.peak_rss / MiB:.0f} MiB, "
        f"allowed {allowed / MiB:.0f} MiB more")


def refused(src: Path, out: Path, preexec: Callable[[], None] | None = None) -> str:
    """Convert ``src`` expecting a refusal: its one line of stderr, once checked that nothing
    is left beside ``out`` and the source is unchanged."""
    before = snapshot(src)
    run = run_measured(lwlocal("convert", str(src), "-o", str(out)), preexec)
    status, stderr = run.status, run.stderr
    assert status == 1, stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert not out.exists() and not list(out.parent.glob(".*partial")), list(out.parent.iterdir())
    assert snapshot(src) == before
    return stderr.strip()


@pytest.mark.parametrize("name", CARD_NAMES)
def test_missing_and_truncated_shards(tmp_path, name):
    """A shard the index names but that is not there, and a shard cut in the middle: one line
    naming the file, exit 1, no output, the source as it was."""
    card = CARDS[name]
    src = synthesize(card, tmp_path / "missing", LAYERS, zeros=True)
    shard = next(src.glob("*.safetensors"))
    shard.unlink()
    assert str(shard) in refused(src, tmp_path / "out.gguf")

    src = synthesize(card, tmp_path / "cut", LAYERS, zeros=True)
    shard = next(src.glob("*.safetensors"))
    os.truncate(shard, shard.stat().st_size // 2)
    assert str(shard) in refused(src, tmp_path / "out.gguf")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[tuple[Path, Callable[[], None] | None]]:
    """A folder on a 256 MiB tmpfs, or a plain folder and a ``preexec_fn`` that limits the
    child's file size to 256 MiB (tests/support/small_disk.py)."""
    folder = tmp_path / "small"
    with disk_of(folder, 256 * MiB) as preexec:
        yield folder, preexec


def test_disk_fills_during_the_write(full_width, small_disk):
    """The output's disk fills in the middle of the embeddings: one line naming the output,
    exit 1, no partial file, the source as it was."""
    folder, preexec = small_disk
    out = folder / "out.gguf"
    line = refused(full_width["longwriter-glm4-9b"], out, preexec)
    assert str(out) in line and "cannot write" in line
    assert not list(folder.iterdir())
