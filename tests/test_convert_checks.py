"""The converter refuses what it cannot convert faithfully, in one line naming the file, tensor
or config field, before it writes anything: the fault trial's malformed and silently accepted
checkpoints as a table, a seeded fuzz over the safetensors reader and the config checks, and
Ctrl-C."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lwlocal.convert.run import convert
from lwlocal.util.errors import LwlocalError, SettingError
from tests.support.bounds import HANG
from tests.support.cli import interruptible, run_cli
from tests.support.corrupt import (
    WEIGHTS,
    drop_tensor,
    duplicate_offsets,
    edit_config,
    edit_header,
    edit_index,
    keep_rows,
    read_safetensors,
    set_config,
    shard,
    write_safetensors,
)
from tests.support.small_disk import small_disk

Break = Callable[[Path], object]
EMBED = "model.embed_tokens.weight"
NORM = "model.norm.weight"
Q0 = "model.layers.0.self_attn.q_proj.weight"
GLM_LAYER = "transformer.encoder.layers.{}."
DEEP = "[" * 100_000 + "]" * 100_000


def header(name: str, **fields: Any) -> Break:
    """Set header fields of tensor ``name`` (a callable is given the old value)."""
    def edit(h: dict[str, Any]) -> None:
        for key, value in fields.items():
            h[name][key] = value(h[name][key]) if callable(value) else value
    return lambda folder: edit_header(folder, edit)


def config(**values: Any) -> Break:
    return lambda folder: set_config(folder, **values)


def rope(**values: Any) -> Break:
    """Set (``...``: remove) keys of the tiny Llama's ``rope_parameters`` (llama3 scaling)."""
    def edit(c: dict[str, Any]) -> None:
        for key, value in values.items():
            if value is ...:
                c["rope_parameters"].pop(key)
            else:
                c["rope_parameters"][key] = value
    return lambda folder: edit_config(folder, edit)


def raw(name: str, text: str | bytes) -> Break:
    """Replace a file's contents."""
    return lambda folder: (folder / name).write_bytes(
        text.encode() if isinstance(text, str) else text)


def raw_header(text: str) -> Break:
    """Replace the weights' header by ``text``, data kept."""
    def edit(folder: Path) -> None:
        data, encoded = (folder / WEIGHTS).read_bytes(), text.encode()
        n = int.from_bytes(data[:8], "little")
        (folder / WEIGHTS).write_bytes(len(encoded).to_bytes(8, "little") + encoded
                                       + data[8 + n:])
    return edit


def both(*steps: Break) -> Break:
    return lambda folder: [step(folder) for step in steps]


def sharded(edit: Callable[[dict[str, Any]], object]) -> Break:
    return both(shard, lambda folder: edit_index(folder, edit))


def extra_shard(folder: Path) -> None:
    shard(folder)
    shutil.copy(folder / "model-00001-of-00002.safetensors",
                folder / "model-00003-of-00003.safetensors")


def outside(index: dict[str, Any]) -> None:
    weight_map = index["weight_map"]
    for name, file in weight_map.items():
        weight_map[name] = f"../{file}"


def shape_as(name: str, shape: list[int]) -> Break:
    return header(name, shape=shape)


def data_and_tail(extra: bytes) -> Break:
    return lambda folder: (folder / WEIGHTS).write_bytes((folder / WEIGHTS).read_bytes() + extra)


def gap(folder: Path) -> None:
    h, data = read_safetensors(folder / WEIGHTS)
    first = min((k for k in h if k != "__metadata__"), key=lambda k: h[k]["data_offsets"][0])
    del h[first]
    write_safetensors(folder / WEIGHTS, h, data)


def first_value(name: str, value: float) -> Break:
    """Set the first value of the (f32) tensor ``name``."""
    def edit(folder: Path) -> None:
        h, data = read_safetensors(folder / WEIGHTS)
        begin = h[name]["data_offsets"][0]
        write_safetensors(folder / WEIGHTS, h, data[:begin] + struct.pack("<f", value)
                          + data[begin + 4:])
    return edit


def linked_out(name: str, target: Callable[[Path], Path] | None = None) -> Break:
    """Move the file ``name`` out of the folder (or to ``target(folder)``) and leave a link to
    it in its place."""
    def edit(folder: Path) -> None:
        outside = target(folder) if target else folder.parent / f"outside-{name}"
        if target is None:
            shutil.move(folder / name, outside)
        else:
            (folder / name).unlink()
        (folder / name).symlink_to(outside)
    return edit


# (id, checkpoint, how it is broken, what the one line says): the cases of the fault trial
# (issue 20) that gave a traceback, then those converted silently, then more of the same kinds.
TRIAL: list[tuple[str, str, Break, str]] = [
    # tracebacks in the trial
    ("offsets-strings", "tiny_llama", header(NORM, data_offsets=lambda o: [str(x) for x in o]),
     r"tensor model.norm.weight: data_offsets \['\d+', '\d+'\] are not a begin and an end"),
    ("offsets-floats", "tiny_llama", header(NORM, data_offsets=lambda o: [x + 0.5 for x in o]),
     r"data_offsets \[[\d.]+, [\d.]+\] are not a begin and an end"),
    ("shape-negative", "tiny_llama", shape_as(NORM, [-64]),
     r"tensor model.norm.weight: shape \[-64\] is not a list of at most 8 sizes"),
    ("shape-float", "tiny_llama", shape_as(NORM, [64.0]), r"shape \[64.0\] is not a list"),
    ("shape-string", "tiny_llama", shape_as(NORM, ["64"]), r"shape \['64'\] is not a list"),
    ("shape-3d", "tiny_llama", shape_as(EMBED, [640, 8, 8]),
     r"tensor model.embed_tokens.weight: shape \[640, 8, 8\], but config.json implies "
     r"\[640, 64\]"),
    ("weight_map-list", "tiny_llama", sharded(lambda i: i.update(weight_map=[1, 2])),
     r"model.safetensors.index.json: weight_map is not an object"),
    ("config-list", "tiny_llama", raw("config.json", "[1, 2]"),
     r"config.json: not a model configuration \(a JSON object\)"),
    ("no-hidden_size", "tiny_llama", config(hidden_size=...), r"config.json: missing hidden_size"),
    ("hidden_size-string", "tiny_llama", config(hidden_size="64"),
     r"config.json: hidden_size '64' is not a whole number"),
    ("heads-0", "tiny_llama", config(num_attention_heads=0),
     r"config.json: num_attention_heads 0 is out of range \(from 1 to 2147483647\)"),
    ("heads-not-divisor", "tiny_llama", config(num_attention_heads=5, head_dim=...,
                                                      num_key_value_heads=...),
     r"config.json: hidden_size 64 is not a multiple of num_attention_heads 5"),
    ("layers-negative", "tiny_llama", config(num_hidden_layers=-1),
     r"config.json: num_hidden_layers -1 is out of range"),
    ("rope_scaling-string", "tiny_llama", config(rope_scaling="yes"),
     r"config.json: rope_scaling 'yes' is not an object"),
    ("rope_parameters-list", "tiny_llama", config(rope_parameters=[1, 2]),
     r"config.json: rope_parameters \[1, 2\] is not an object"),
    ("rope-type-number", "tiny_llama", rope(rope_type=7),
     r"config.json: rope type 7 is not a name"),
    ("rope-factor-string", "tiny_llama", rope(factor="8"),
     r"config.json: rope_parameters.factor '8' is not a number"),
    ("llama3-rope-no-factor", "tiny_llama", rope(factor=...),
     r"config.json: missing rope_parameters.factor"),
    ("rms_norm_eps-string", "tiny_llama", config(rms_norm_eps="1e-5"),
     r"config.json: rms_norm_eps '1e-5' is not a number"),
    ("max_position_embeddings-2**40", "tiny_llama", config(max_position_embeddings=2**40),
     r"config.json: max_position_embeddings 1099511627776 is out of range"),
    # converted silently in the trial
    ("overlapping-offsets", "tiny_llama", duplicate_offsets,
     r"model.safetensors: tensors \S+ and \S+ overlap"),
    ("bool-dtype", "tiny_llama", header(NORM, dtype="BOOL", shape=[256]),
     r"tensor model.norm.weight: dtype BOOL is not a floating-point weight"),
    ("shape-not-config", "tiny_llama", config(intermediate_size=96),
     r"mlp.\w+_proj.weight: shape \[\d+, \d+\], but config.json implies \[(96, 64|64, 96)\]"),
    ("transposed-embedding", "tiny_llama", shape_as(EMBED, [64, 640]),
     r"tensor model.embed_tokens.weight: shape \[64, 640\], but config.json implies \[640, 64\]"),
    ("no-q_proj-0", "tiny_llama", lambda f: drop_tensor(f, Q0),
     r"tensor model.layers.0.self_attn.q_proj.weight is missing \(config.json gives 2 layers\)"),
    ("no-embedding", "tiny_llama", lambda f: drop_tensor(f, EMBED),
     r"tensor model.embed_tokens.weight is missing$"),
    ("layers-100-of-2", "tiny_llama", config(num_hidden_layers=100),
     r"tensor model.layers.2.input_layernorm.weight is missing \(config.json gives 100 layers\)"),
    ("vocab_size-10", "tiny_llama", config(vocab_size=10),
     r"tensor lm_head.weight: shape \[640, 64\], but config.json implies \[10, 64\]"),
    ("vocab-smaller-than-tokenizer", "tiny_llama",
     both(lambda f: keep_rows(f, 400, EMBED, "lm_head.weight"), config(vocab_size=400)),
     r"tokenizer.json: token ids up to 426 do not fit config.json's vocabulary of 400"),
    ("shard-outside-folder", "tiny_llama", sharded(outside),
     r"model.safetensors.index.json: shard '../model-0000\d-of-00002.safetensors' is not a file "
     r"in the checkpoint folder"),
    ("extra-shard", "tiny_llama", extra_shard,
     r"model-00003-of-00003.safetensors: a safetensors file that "
     r"model.safetensors.index.json does not name \(a stale index\?\)"),
    # more of the same kinds
    ("kv-heads-not-divisor", "tiny_llama", config(num_key_value_heads=3),
     r"config.json: num_attention_heads 4 is not a multiple of num_key_value_heads 3"),
    ("head_dim-odd", "tiny_llama", config(head_dim=15),
     r"config.json: head_dim 15 is odd; rope turns pairs of values"),
    ("layers-1-of-2", "tiny_llama", config(num_hidden_layers=1),
     r"tensor model.layers.1.\S+: layer 1, beyond the 1 layers config.json gives"),
    ("hidden_size-bool", "tiny_llama", config(hidden_size=True),
     r"hidden_size True is not a whole number"),
    ("hidden_size-float", "tiny_llama", config(hidden_size=64.0),
     r"hidden_size 64.0 is not a whole number"),
    ("rope_theta-negative", "tiny_llama", rope(rope_theta=-1.0),
     r"config.json: rope_parameters.rope_theta -1.0 is out of range \(above 0 to 3.4e\+38\)"),
    ("rope_theta-infinite", "tiny_llama", rope(rope_theta=float("inf")),
     r"rope_theta inf is out of range"),
    ("rope-freq-factors-equal", "tiny_llama", rope(high_freq_factor=1.0),
     r"config.json: rope_parameters.high_freq_factor 1 is not above low_freq_factor 1"),
    ("linear-rope-no-factor", "tiny_llama", rope(rope_type="linear", factor=...),
     r"config.json: missing rope_parameters.factor"),
    ("rms_norm_eps-nan", "tiny_llama", config(rms_norm_eps=float("nan")),
     r"config.json: rms_norm_eps nan is out of range \(from 0 to 1\)"),
    ("architectures-numbers", "tiny_llama", config(architectures=[1, 2]),
     r"config.json: architectures \[1, 2\] is not a list of names"),
    ("config-deep", "tiny_llama", raw("config.json", DEEP),
     r"config.json: the model configuration is not valid JSON \(maximum recursion"),
    ("config-huge-number", "tiny_llama", raw("config.json", '{"hidden_size": 1' + "0" * 5000 + "}"),
     r"config.json: the model configuration is not valid JSON \(Exceeds the limit"),
    ("dtype-list", "tiny_llama", header(NORM, dtype=["F32"]),
     r"tensor model.norm.weight: unsupported dtype \['F32'\]"),
    ("dtype-unknown", "tiny_llama", header(NORM, dtype="F8_E4M3"), r"unsupported dtype F8_E4M3"),
    ("entry-not-object", "tiny_llama", lambda f: edit_header(f, lambda h: h.update({NORM: [1]})),
     r"tensor model.norm.weight: header entry is not an object with dtype, shape and "
     r"data_offsets"),
    ("entry-no-offsets", "tiny_llama", lambda f: edit_header(f, lambda h: h[NORM].pop(
        "data_offsets")), r"header entry is not an object with dtype, shape and data_offsets"),
    ("offsets-reversed", "tiny_llama", header(NORM, data_offsets=lambda o: o[::-1]),
     r"data_offsets \[\d+, \d+\] are not a begin and an end"),
    ("offsets-beyond-file", "tiny_llama", header(NORM, data_offsets=lambda o: [
        x + 10**6 for x in o]), r"tensor model.norm.weight: data offsets beyond the end"),
    ("shape-wrong-size", "tiny_llama", shape_as(NORM, [65]),
     r"tensor model.norm.weight: 256 bytes for shape \[65\] of F32 \(expected 260\)"),
    ("shape-9d", "tiny_llama", shape_as(NORM, [1] * 8 + [64]), r"is not a list of at most 8"),
    ("shape-huge-empty", "tiny_llama", lambda f: edit_header(f, lambda h: h.update(
        {"zero": {"dtype": "F32", "shape": [0, 2**40, 2**40], "data_offsets": [0, 0]}})),
     r"tensor zero: shape \[0, 1099511627776, 1099511627776\] is too large"),
    ("gap", "tiny_llama", gap, r"\d+ bytes before tensor \S+ belong to no tensor"),
    ("trailing-bytes", "tiny_llama", data_and_tail(b"junk"),
     r"model.safetensors: 4 bytes after the last tensor belong to no tensor"),
    ("header-duplicate-key", "tiny_llama", raw_header(
        '{"a": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}, "a": {}}'),
     r"the safetensors header is not valid JSON \(key 'a' given twice\)"),
    ("header-list", "tiny_llama", raw_header("[]"),
     r"model.safetensors: the safetensors header is not a JSON object"),
    ("header-deep", "tiny_llama", raw_header(DEEP),
     r"header is not valid JSON \(maximum recursion"),
    ("header-metadata-list", "tiny_llama", lambda f: edit_header(
        f, lambda h: h.update(__metadata__=[])), r"__metadata__ is not an object"),
    ("header-no-tensors", "tiny_llama", raw(WEIGHTS, b"\x02\x00\x00\x00\x00\x00\x00\x00{}"),
     r"the safetensors files hold no tensors"),
    ("tensor-twice-in-shards", "tiny_llama", both(shard, lambda f: shutil.copy(
        f / "model-00001-of-00002.safetensors", f / "model-00002-of-00002.safetensors")),
     r"tensor \S+ is in both model-00001-of-00002.safetensors and "
     r"model-00002-of-00002.safetensors"),
    ("index-wrong-shard", "tiny_llama", sharded(lambda i: i["weight_map"].update(
        {EMBED: "model-00002-of-00002.safetensors"})),
     r"names model-00002-of-00002.safetensors for tensor model.embed_tokens.weight, which "
     r"lies in model-00001-of-00002.safetensors"),
    ("index-unnamed-tensor", "tiny_llama", sharded(lambda i: i["weight_map"].pop(EMBED)),
     r"index.json: does not name tensor model.embed_tokens.weight"),
    ("index-missing-tensor", "tiny_llama", sharded(lambda i: i["weight_map"].update(
        {"ghost": "model-00001-of-00002.safetensors"})),
     r"index.json: tensor ghost is not in model-00001-of-00002.safetensors"),
    ("index-not-json", "tiny_llama", both(shard, raw("model.safetensors.index.json", "{")),
     r"model.safetensors.index.json: the index is not valid JSON"),
    # issue 29: links out of the folder, read before the refusal or not refused at all;
    # weights that are not numbers, converted silently
    ("weights-link-outside", "tiny_llama", linked_out(WEIGHTS),
     r"model.safetensors: a link to \S+/outside-model.safetensors, outside the model folder"),
    ("config-link-etc-passwd", "tiny_llama", linked_out("config.json", lambda f: Path(
        "/etc/passwd")), r"config.json: a link to /etc/passwd, outside the model folder"),
    ("tokenizer-link-outside", "tiny_llama", linked_out("tokenizer.json"),
     r"tokenizer.json: a link to \S+, outside the model folder"),
    ("nan-norm", "tiny_llama", first_value(NORM, float("nan")),
     r"tensor model.norm.weight holds NaN or infinite values \(a damaged checkpoint\?\); "
     r"allow_nonfinite converts them"),
    ("inf-q_proj", "tiny_llama", first_value(Q0, float("inf")),
     r"tensor model.layers.0.self_attn.q_proj.weight holds NaN or infinite"),
    ("minus-inf-embedding", "tiny_llama", first_value(EMBED, float("-inf")),
     r"tensor model.embed_tokens.weight holds NaN or infinite"),
    ("glm-layers-negative", "tiny_chatglm", config(num_layers=-1),
     r"config.json: num_layers -1 is out of range"),
    ("glm-kv_channels-odd", "tiny_chatglm", config(kv_channels=15),
     r"config.json: kv_channels 15 is odd"),
    ("glm-groups-not-divisor", "tiny_chatglm", config(multi_query_group_num=3),
     r"config.json: num_attention_heads 4 is not a multiple of multi_query_group_num 3"),
    ("glm-multi_query-string", "tiny_chatglm", config(multi_query_attention="yes"),
     r"config.json: multi_query_attention 'yes' is not true or false"),
    ("glm-rope_ratio-string", "tiny_chatglm", config(rope_ratio="500"),
     r"config.json: rope_ratio '500' is not a number"),
    ("glm-seq_length-2**40", "tiny_chatglm", config(seq_length=2**40),
     r"config.json: seq_length 1099511627776 is out of range"),
    ("glm-vocab-0", "tiny_chatglm", config(padded_vocab_size=0),
     r"config.json: padded_vocab_size 0 is out of range"),
    ("glm-epsilon-string", "tiny_chatglm", config(layernorm_epsilon="x"),
     r"config.json: layernorm_epsilon 'x' is not a number"),
    ("glm-no-qkv-1", "tiny_chatglm", lambda f: drop_tensor(
        f, GLM_LAYER.format(1) + "self_attention.query_key_value.weight"),
     r"tensor transformer.encoder.layers.1.self_attention.query_key_value.weight is missing"),
    ("glm-gate-up-unfused", "tiny_chatglm", lambda f: keep_rows(
        f, 96, GLM_LAYER.format(0) + "mlp.dense_h_to_4h.weight"),
     r"dense_h_to_4h.weight: shape \[96, 64\], but config.json implies \[192, 64\]"),
    ("glm-partial-rotary-small", "tiny_glm", lambda f: edit_config(
        f, lambda c: c["rope_parameters"].update(partial_rotary_factor=0.1)),
     r"config.json: partial_rotary_factor 0.1 leaves 1 of each head's 16 values to rotate"),
    ("glm-partial-rotary-0", "tiny_glm", lambda f: edit_config(
        f, lambda c: c["rope_parameters"].update(partial_rotary_factor=0)),
     r"config.json: rope_parameters.partial_rotary_factor 0 is out of range \(above 0 to 1\)"),
]


def broken_copy(source: Path, folder: Path, break_it: Break) -> Path:
    shutil.copytree(source, folder)
    break_it(folder)
    return folder


@pytest.mark.parametrize("case,layout,break_it,problem", TRIAL, ids=[c[0] for c in TRIAL])
def test_trial_cases_are_refused_in_one_line(request, tmp_path, case, layout, break_it,
                                             problem):
    folder = broken_copy(request.getfixturevalue(layout), tmp_path / "broken", break_it)
    out = tmp_path / "out.gguf"
    with pytest.raises(LwlocalError) as caught:
        convert(folder, out, "f16")
    message = str(caught.value)
    assert "\n" not in message and len(message) < 400
    assert re.search(problem, message), message
    assert not out.exists() and not list(tmp_path.glob(".*partial"))


def test_refusals_through_the_command_line(tiny_llama, tmp_path, lw_home):
    """What the user sees: one line, exit 1, no output."""
    for name, break_it in [("transposed", shape_as(EMBED, [64, 640])),
                           ("weight-map", sharded(lambda i: i.update(weight_map=[])))]:
        folder = broken_copy(tiny_llama, tmp_path / name, break_it)
        out = tmp_path / f"{name}.gguf"
        proc = run_cli("convert", str(folder), "-o", str(out), env_home=lw_home)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and len(lines) == 1, proc.stderr
        assert lines[0].startswith("lwlocal: error: ") and not out.exists()


# --- fuzz: mutated headers, configs and bytes either convert or are refused in one line ---

NASTY: list[Any] = [-1, 0, 1, 3, 15, 2**31, 2**64, -(2**63), 1.5, float("inf"), float("nan"),
                    "7", "", None, True, False, [], {}, [1, 2], [[0]], [0, 0, 0], "F16", "BOOL",
                    {"rope_type": "llama3"}, [[[[]]]]]


def nasty(rng: random.Random, old: Any) -> Any:
    """A hostile replacement for ``old``: a value from ``NASTY`` or ``old`` nudged."""
    if isinstance(old, int) and not isinstance(old, bool) and rng.random() < 0.4:
        return rng.choice([old + 1, old - 1, old * 2, old // 2, -old])
    if isinstance(old, list) and old and rng.random() < 0.4:
        nudged = list(old)
        i = rng.randrange(len(nudged))
        nudged[i] = nasty(rng, nudged[i])
        return nudged
    return rng.choice(NASTY)


def mutate_header(rng: random.Random, folder: Path) -> None:
    h, data = read_safetensors(folder / WEIGHTS)
    names = [k for k in h if k != "__metadata__"]
    name = rng.choice(names)
    kind = rng.randrange(5)
    if kind == 0:
        field = rng.choice(["dtype", "shape", "data_offsets"])
        h[name][field] = nasty(rng, h[name][field])
    elif kind == 1:
        del h[name][rng.choice(["dtype", "shape", "data_offsets"])]
    elif kind == 2:
        h[rng.choice(["model.layers.7.mlp.up_proj.weight", "bogus", "__metadata__"])] = h.pop(name)
    elif kind == 3:
        h[name] = nasty(rng, h[name])
    else:
        other = rng.choice(names)
        h[name]["data_offsets"], h[other]["data_offsets"] = (h[other]["data_offsets"],
                                                             h[name]["data_offsets"])
    write_safetensors(folder / WEIGHTS, h, data)


def mutate_bytes(rng: random.Random, folder: Path) -> None:
    """Flip bytes in the header or the data, cut the file short or add to it."""
    data = bytearray((folder / WEIGHTS).read_bytes())
    n = int.from_bytes(data[:8], "little")
    kind = rng.randrange(4)
    if kind == 0:
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(8 + n)] = rng.randrange(256)
    elif kind == 1:
        for _ in range(rng.randint(1, 16)):
            data[rng.randrange(8 + n, len(data))] = rng.randrange(256)
    elif kind == 2:
        del data[rng.randrange(len(data)):]
    else:
        data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    (folder / WEIGHTS).write_bytes(bytes(data))


def mutate_config(rng: random.Random, folder: Path) -> None:
    def edit(c: dict[str, Any]) -> None:
        sections = [c] + [v for v in c.values() if isinstance(v, dict)]
        section = rng.choice(sections)
        key = rng.choice(sorted(section))
        if rng.random() < 0.25:
            del section[key]
        else:
            section[key] = nasty(rng, section[key])
    if rng.random() < 0.05:
        (folder / "config.json").write_text(json.dumps(rng.choice(NASTY)))
    else:
        edit_config(folder, edit)


MUTATIONS = [mutate_header, mutate_header, mutate_bytes, mutate_config, mutate_config]


def test_fuzz_convert_never_raises_anything_else(tiny_llama, tiny_chatglm, tmp_path):
    """300 seeded mutations of the tiny checkpoints' headers, bytes and configs: each one
    converts, or is refused with one LwlocalError line and leaves no file behind."""
    rng = random.Random(20)
    outcomes: Counter[str] = Counter()
    for i in range(300):
        source = rng.choice([tiny_llama, tiny_chatglm])
        folder = tmp_path / f"case{i}"
        mutation = rng.choice(MUTATIONS)
        broken_copy(source, folder, lambda f, m=mutation: m(rng, f))
        out = tmp_path / "out.gguf"
        try:
            convert(folder, out, "f16")
            outcomes["converted"] += 1
            out.unlink()
        except LwlocalError as exc:
            assert "\n" not in str(exc) and len(str(exc)) < 400, (i, mutation, str(exc))
            assert not out.exists()
            outcomes["refused"] += 1
        assert not list(tmp_path.glob(".*partial")), i
        shutil.rmtree(folder)
    assert outcomes["refused"] > 150 and outcomes["converted"] > 10, outcomes


# --- Ctrl-C ---

SLOW_CONVERT = """
import sys, time
import lwlocal.convert.run as run
encode = run.encode_tensor
run.encode_tensor = lambda *args: (time.sleep(0.3), encode(*args))[1]
from lwlocal.cli import main
sys.argv = ["lwlocal", "convert", *sys.argv[1:]]
main()
"""


def test_ctrl_c_during_convert(tiny_llama, tmp_path, lw_home):
    """Ctrl-C while tensors are written: exit 130, one line, no partial or output file."""
    out = tmp_path / "out.gguf"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_CONVERT, str(tiny_llama), "-o", str(out)],
                            env={**os.environ, "LWLOCAL_HOME": str(lw_home)},
                            stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    deadline = time.monotonic() + HANG
    while not (tmp_path / ".out.gguf.partial").exists() and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=HANG)
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines() == [f"interrupted: {out} was not written"]
    assert not out.exists() and not list(tmp_path.glob(".*partial"))


def test_f16_refuses_values_it_cannot_hold(tiny_llama, tmp_path):
    """A weight beyond f16's range would become infinity: f16 refuses, naming the setting in
    the library's words; f32 converts it."""
    folder = broken_copy(tiny_llama, tmp_path / "huge", first_value(Q0, 1e6))
    with pytest.raises(SettingError, match=r"^outtype f16: tensor blk.0.attn_q.weight has values "
                                           r"beyond f16's range \(1e\+06\); choose bf16 or f32$"):
        convert(folder, tmp_path / "x.gguf", "f16")
    assert not list(tmp_path.glob("*.gguf")) and not list(tmp_path.glob(".*partial"))
    assert convert(folder, tmp_path / "x.gguf", "f32").tensors == 22


def test_nonfinite_weights_convert_when_allowed(tiny_llama, tmp_path, lw_home):
    """`--allow-nonfinite` converts a NaN as it is; without it, one line naming the tensor and
    the option, exit 1, no output."""
    folder = broken_copy(tiny_llama, tmp_path / "nan", first_value(NORM, float("nan")))
    out = tmp_path / "nan.gguf"
    proc = run_cli("convert", str(folder), "-o", str(out), env_home=lw_home)
    assert proc.returncode == 1 and not out.exists(), proc.stderr
    assert proc.stderr.strip() == (f"lwlocal: error: {folder}: tensor model.norm.weight holds "
                                   "NaN or infinite values (a damaged checkpoint?); "
                                   "--allow-nonfinite converts them as they are")
    run_cli("convert", str(folder), "-o", str(out), "--allow-nonfinite", env_home=lw_home,
            check=True)
    assert convert(folder, tmp_path / "b.gguf", "bf16", allow_nonfinite=True).tensors == 22


def test_bf16_weights_copied_as_they_are_are_checked_too(tiny_llama, tmp_path):
    """bf16 to bf16 copies bits without widening them: an all-ones exponent is still found."""
    import numpy as np

    from lwlocal.convert.run import check_finite
    from lwlocal.convert.safetensors_source import Checkpoint

    checkpoint = Checkpoint(tiny_llama)
    info = checkpoint.tensors[NORM]
    bits = np.array([0x3F80, 0x7F80, 0x0001], dtype=np.uint16)  # 1.0, +inf, a subnormal
    with pytest.raises(SettingError, match="tensor model.norm.weight holds NaN"):
        check_finite(bits, info, checkpoint)
    check_finite(np.array([0x3F80, 0xFF7F], dtype=np.uint16), info, checkpoint)  # -max is fine


def hub_snapshot(source: Path, cache: Path) -> Path:
    """``source`` laid out as the Hugging Face cache lays out a download: each file a blob,
    linked from the snapshot folder as ``../../blobs/NAME``."""
    repo = cache / "models--org--tiny"
    snapshot, blobs = repo / "snapshots" / "0123abcd", repo / "blobs"
    snapshot.mkdir(parents=True)
    blobs.mkdir()
    for path in sorted(source.iterdir()):
        shutil.copy(path, blobs / f"blob-{path.name}")
        (snapshot / path.name).symlink_to(Path("../../blobs") / f"blob-{path.name}")
    return snapshot


def test_a_hub_cache_snapshot_converts_and_links_beyond_its_blobs_are_refused(tiny_llama,
                                                                             tmp_path):
    snapshot = hub_snapshot(tiny_llama, tmp_path / "hub")
    assert convert(snapshot, tmp_path / "ok.gguf", "f16").tensors == 22
    other = hub_snapshot(tiny_llama, tmp_path / "other-hub")
    (snapshot / "config.json").unlink()
    (snapshot / "config.json").symlink_to(other / "config.json")  # another cache's blob
    with pytest.raises(LwlocalError, match=r"config.json: a link to \S+/other-hub/\S+, outside "
                                           r"the model folder"):
        convert(snapshot, tmp_path / "no.gguf", "f16")


@pytest.mark.parametrize("size", [4096, 64 * 1024])
def test_a_full_disk_is_one_line_wherever_it_fills(size, tiny_llama, tmp_path, lw_home):
    """The output's disk fills in the header (4 KiB) or in the tensors (64 KiB): one line
    naming the output, exit 1, nothing left on that disk, the checkpoint as it was."""
    before = {p.name: p.read_bytes() for p in tiny_llama.iterdir()}
    folder = tmp_path / "small"
    with small_disk(folder, size) as preexec:
        out = folder / "out.gguf"
        proc = subprocess.run([sys.executable, "-m", "lwlocal", "convert", str(tiny_llama), "-o",
                               str(out)], env={**os.environ, "LWLOCAL_HOME": str(lw_home)},
                              capture_output=True, text=True, timeout=HANG, preexec_fn=preexec)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and len(lines) == 1, proc.stderr
        assert lines[0].startswith(f"lwlocal: error: {out}: cannot write ("), lines
        assert not list(folder.iterdir())
    assert {p.name: p.read_bytes() for p in tiny_llama.iterdir()} == before
