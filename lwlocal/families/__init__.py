"""Model families, one module each; this finds them.

A family module defines ``ARCHITECTURES`` (the HF layouts it converts) and ``CARDS`` (the
published models it knows); adding a family is adding its module here.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from types import ModuleType

from lwlocal.families.base import Architecture, Config, ModelCard
from lwlocal.util.errors import LwlocalError


@functools.cache
def _family_modules() -> tuple[ModuleType, ...]:
    modules = (importlib.import_module(f"{__name__}.{info.name}")
               for info in pkgutil.iter_modules(__path__))
    return tuple(m for m in modules if hasattr(m, "ARCHITECTURES"))


def architectures() -> dict[str, Architecture]:
    """Every HF architecture name lwlocal reads, with its layout."""
    return {name: arch for module in _family_modules() for arch in module.ARCHITECTURES
            for name in arch.hf_architectures}


def cards() -> dict[str, ModelCard]:
    """Every published model the families know, by card name."""
    return {card.name: card for module in _family_modules() for card in module.CARDS}


def architecture_for(config: Config, source: object, purpose: str = "") -> Architecture:
    """The layout of a checkpoint whose config.json (at ``source``) is ``config``; the error
    says what it is not supported ``purpose`` (e.g. `` for GPTQ``)."""
    names = config.get("architectures") or []
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise LwlocalError(f"{source}: architectures {str(names)[:40]} is not a list of names")
    known = architectures()
    for name in names:
        if name in known:
            return known[name]
    raise LwlocalError(f"{source}: architecture {', '.join(names) or '?'} is not supported"
                       f"{purpose}; supported: {', '.join(known)}")
