"""Ways to break a checkpoint folder, for the converter's refusal and fuzz tests: its
safetensors header and data, config.json, the shard index."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

Header = dict[str, Any]
Tensor = tuple[str, list[int], bytes]  # dtype, shape, bytes
WEIGHTS = "model.safetensors"


def read_safetensors(path: Path) -> tuple[Header, bytes]:
    """A safetensors file's header (parsed) and data section."""
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8: 8 + n]), data[8 + n:]


def write_safetensors(path: Path, header: Header, data: bytes) -> None:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


def edit_header(folder: Path, edit: Callable[[Header], object]) -> None:
    """Change the header of ``folder``'s weights in place (``edit`` mutates it)."""
    path = folder / WEIGHTS
    header, data = read_safetensors(path)
    edit(header)
    write_safetensors(path, header, data)


def edit_config(folder: Path, edit: Callable[[dict[str, Any]], object]) -> None:
    path = folder / "config.json"
    config = json.loads(path.read_text())
    edit(config)
    path.write_text(json.dumps(config))


def set_config(folder: Path, **values: Any) -> None:
    """Set (or, with ``...``, remove) config.json keys."""
    def edit(config: dict[str, Any]) -> None:
        for key, value in values.items():
            if value is ...:
                config.pop(key, None)
            else:
                config[key] = value
    edit_config(folder, edit)


def tensors(path: Path) -> dict[str, Tensor]:
    """A safetensors file's tensors: name -> (dtype, shape, bytes)."""
    header, data = read_safetensors(path)
    return {name: (entry["dtype"], entry["shape"], data[slice(*entry["data_offsets"])])
            for name, entry in header.items() if name != "__metadata__"}


def write_tensors(path: Path, named: dict[str, Tensor]) -> None:
    """Tensors laid out one after another, as a valid safetensors file."""
    header, at = {}, 0
    for name, (dtype, shape, raw) in named.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [at, at + len(raw)]}
        at += len(raw)
    write_safetensors(path, header, b"".join(raw for _, _, raw in named.values()))


def drop_tensor(folder: Path, name: str) -> None:
    """Remove one tensor, keeping the file valid."""
    named = tensors(folder / WEIGHTS)
    del named[name]
    write_tensors(folder / WEIGHTS, named)


def keep_rows(folder: Path, rows: int, *names: str) -> None:
    """Keep the first ``rows`` rows of the tensors ``names``."""
    named = tensors(folder / WEIGHTS)
    for name in names:
        dtype, shape, raw = named[name]
        named[name] = (dtype, [rows, *shape[1:]], raw[: len(raw) // shape[0] * rows])
    write_tensors(folder / WEIGHTS, named)


def duplicate_offsets(folder: Path) -> None:
    """Point the last tensor at the bytes of another of its size, and drop its own bytes:
    two tensors overlap, and the data section is otherwise covered."""
    path = folder / WEIGHTS
    header, data = read_safetensors(path)
    entries = {k: v["data_offsets"] for k, v in header.items() if k != "__metadata__"}
    last = max(entries, key=lambda k: entries[k][1])
    begin, end = entries[last]
    twin = next(k for k, (b, e) in entries.items() if k != last and e - b == end - begin)
    header[last]["data_offsets"] = entries[twin]
    write_safetensors(path, header, data[:begin])


def shard(folder: Path) -> None:
    """Split the weights in two shards with a ``model.safetensors.index.json``."""
    named = tensors(folder / WEIGHTS)
    (folder / WEIGHTS).unlink()
    names = sorted(named)
    weight_map = {}
    for i, part in enumerate((names[: len(names) // 2], names[len(names) // 2:]), 1):
        file = f"model-0000{i}-of-00002.safetensors"
        write_tensors(folder / file, {name: named[name] for name in part})
        weight_map.update(dict.fromkeys(part, file))
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": weight_map}))


def edit_index(folder: Path, edit: Callable[[dict[str, Any]], object]) -> None:
    path = folder / "model.safetensors.index.json"
    index = json.loads(path.read_text())
    edit(index)
    path.write_text(json.dumps(index))
