"""The package's layers import one way: each only from the layers above it
(docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import lwlocal

LAYERS = ["util", "families", "models", "runtime", "convert", "quant", "memory", "openai",
          "write", ("cli", "tui", "bench", "dataset")]
RANK = {name: i for i, layer in enumerate(LAYERS)
        for name in (layer if isinstance(layer, tuple) else (layer,))}


def imported_packages(path: Path) -> set[str]:
    """The lwlocal packages a module imports (at any depth of its code)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] == "lwlocal" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_every_package_is_in_a_layer():
    root = Path(lwlocal.__file__).parent
    packages = {p.name for p in root.iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(RANK)


def test_no_layer_imports_from_a_layer_below_it():
    root = Path(lwlocal.__file__).parent
    wrong = [f"{path.relative_to(root)} imports lwlocal.{dep}"
             for path in sorted(root.rglob("*.py")) if len(path.relative_to(root).parts) > 1
             for dep in imported_packages(path)
             if dep in RANK and RANK[dep] > RANK[path.relative_to(root).parts[0]]]
    assert not wrong
