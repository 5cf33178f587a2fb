"""A dataset's examples in the layout a fine-tuning tool reads: JSON lines, or a Parquet file
written by the ``datasets`` library (the ``dataset`` extra) when the output ends in
``.parquet``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lwlocal.dataset.layout import LAYOUTS
from lwlocal.dataset.ledger import read_examples
from lwlocal.util.atomic import atomic_write
from lwlocal.util.destination import replacing
from lwlocal.util.errors import LwlocalError


def export_dataset(folder: Path, layout: str, out: Path) -> int:
    """Write the kept examples of ``folder`` in ``layout`` (see :data:`LAYOUTS`) to ``out``,
    under a temporary name; the number written."""
    if not folder.is_dir():
        raise LwlocalError(f"{folder}: not a dataset folder")
    rows = [LAYOUTS[layout](example) for example in read_examples(folder)]
    if out.suffix == ".parquet":
        _write_parquet(rows, out)
    else:
        atomic_write(out, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return len(rows)


def _write_parquet(rows: list[dict[str, Any]], out: Path) -> None:
    try:
        import datasets
    except ImportError as exc:
        raise LwlocalError(f"{out}: Parquet needs the datasets library: pip install "
                           "'lwlocal[dataset]'") from exc
    table = datasets.Dataset.from_list(rows)
    with replacing(out, ".partial.parquet") as tmp:
        table.to_parquet(str(tmp))
