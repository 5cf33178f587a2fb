"""The terminal app uses Textual's public API only: an attribute or module whose name starts
with an underscore is Textual's to change in any release, and the app would break silently."""

from __future__ import annotations

import ast
from pathlib import Path

import lwlocal.tui

APP = Path(lwlocal.tui.__file__).parent


def private_uses(source: str) -> list[str]:
    """Private names ``source`` reaches: ``obj._name`` on anything but ``self``, ``self._name``
    never assigned in the app itself, and imports from ``textual._module``."""
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and any(
                part.startswith("_") and not part.startswith("__")
                for part in (node.module or "").split(".")):
            found.append(f"import from {node.module}")
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_") or (
                node.attr.startswith("__")):
            continue
        if not (isinstance(node.value, ast.Name) and node.value.id == "self"):
            found.append(f"line {node.lineno}: .{node.attr}")
        elif node.attr not in OWN:
            found.append(f"line {node.lineno}: self.{node.attr}")
    return found


def own_names(path: Path) -> set[str]:
    """The methods the app's own code defines and the ``self._name`` attributes it assigns."""
    tree = ast.parse(path.read_text())
    methods = {node.name for node in ast.walk(tree)
               if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    return methods | {
        target.attr for node in ast.walk(tree) if isinstance(node, (ast.Assign, ast.AnnAssign))
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        for target in (target.elts if isinstance(target, ast.Tuple) else [target])
        if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
        and target.value.id == "self"}


OWN = set().union(*(own_names(p) for p in APP.rglob("*.py")))


def test_the_app_reaches_no_private_attribute_of_textual():
    found = {str(p.relative_to(APP)): private_uses(p.read_text()) for p in APP.rglob("*.py")}
    assert {path: uses for path, uses in found.items() if uses} == {}
