"""The package's layers import one way: each only from the layers above it
(docs/architecture.md); and no module imports, directly or through others, a module that imports
it back."""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import lwlocal

ROOT = Path(lwlocal.__file__).parent
LAYERS = ["util", "families", "models", "runtime", "convert", "quant", "memory", "openai",
          "write", ("cli", "tui", "bench", "dataset")]
RANK = {name: i for i, layer in enumerate(LAYERS)
        for name in (layer if isinstance(layer, tuple) else (layer,))}


def module_name(path: Path) -> str:
    """``lwlocal/memory/planner.py`` -> ``lwlocal.memory.planner`` (a package: its folder)."""
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def _type_only(node: ast.AST) -> bool:
    """An ``if TYPE_CHECKING:`` block: imports the type checker reads and Python never runs."""
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _import_nodes(node: ast.AST, with_type_only: bool) -> Iterator[ast.ImportFrom]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
            yield child
        elif with_type_only or not _type_only(child):
            yield from _import_nodes(child, with_type_only)


def imported_modules(path: Path, with_type_only: bool = True) -> set[str]:
    """The lwlocal modules a module imports (at any depth of its code): for ``from a.b import
    c``, the module ``a.b.c`` where there is one, else ``a.b``."""
    found = set()
    for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8")), with_type_only):
        if node.module == "lwlocal" or node.module.startswith("lwlocal."):
            found |= {f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in MODULES
                      else node.module for alias in node.names}
    return found


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The groups of nodes that reach each other (strongly connected components of more than
    one node, each sorted), by Tarjan's algorithm."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = stack[stack.index(node):]
            del stack[stack.index(node):]
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_every_package_is_in_a_layer():
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(RANK)


def test_no_layer_imports_from_a_layer_below_it():
    layer = {name: name.split(".")[1] for name in MODULES
             if "." in name and name.split(".")[1] in RANK}  # the modules of the packages
    wrong = [f"{name} imports {dep}" for name in layer for dep in imported_modules(MODULES[name])
             if dep in layer and RANK[layer[dep]] > RANK[layer[name]]]
    assert not wrong


def test_cycles_are_found():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e", "d"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    """Imports inside functions count (they run when called); ``TYPE_CHECKING`` ones do not."""
    graph = {name: imported_modules(path, with_type_only=False) - {name}
             for name, path in MODULES.items()}
    assert cycles(graph) == []
