"""A GGUF header as typed data: metadata values and arrays, the tensor table, and what is wrong
with a damaged one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lwlocal.util.errors import LwlocalError

if TYPE_CHECKING:
    import numpy as np
    from gguf import GGMLQuantizationType, GGUFValueType

Scalar = int | float | str | bool


class InvalidGGUF(ValueError):
    """What is wrong with a GGUF file, in a few words."""


@dataclass(frozen=True)
class GGUFArray:
    """A metadata array: its element type and values (a numpy array of numbers, or the raw
    bytes of each string)."""

    item_type: GGUFValueType
    values: np.ndarray | list[bytes]

    def __len__(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class TensorInfo:
    """One entry of the tensor table. ``shape`` is in GGUF order (the row length first)."""

    name: str
    shape: tuple[int, ...]
    tensor_type: GGMLQuantizationType
    offset: int  # from the start of the file
    n_bytes: int

    @property
    def n_elements(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count


@dataclass(frozen=True)
class GGUFFile:
    """A checked GGUF header: metadata (scalars as Python values, arrays as ``GGUFArray``), the
    tensor table and where the tensor data starts."""

    path: Path
    version: int
    fields: dict[str, Scalar | GGUFArray]
    tensors: list[TensorInfo]
    data_offset: int

    def tensor_data(self, tensor: TensorInfo) -> np.ndarray:
        """A float or integer tensor's values (copied from the file), shaped row-major."""
        import numpy as np

        dtype = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "I8": "i1", "I16": "<i2",
                 "I32": "<i4", "I64": "<i8"}.get(tensor.tensor_type.name)
        if dtype is None:
            raise LwlocalError(f"{self.path}: tensor {tensor.name} is {tensor.tensor_type.name}, "
                               "not a plain number type")
        values = np.fromfile(self.path, dtype=dtype, count=tensor.n_elements,
                             offset=tensor.offset)
        return values.reshape(tuple(reversed(tensor.shape)))

