"""What a writing job is: its settings, kept in its journal so it can be run again the same way."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from lwlocal.memory.context_settings import Overrides
from lwlocal.runtime.engine import Sampling
from lwlocal.write.outline import section_range

MODES = ("agentwrite", "direct")
BACKENDS = ("local", "openai")
MEMORY_FIELDS = ("n_ctx", "kv_type", "flash_attn", "n_gpu_layers", "n_batch")
# a settings field's annotation: the types its value may have in job.json
JSON_TYPES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "bool": (bool,),
                                           "float": (int, float)}


def check_type(name: str, value: Any, annotation: str) -> None:
    """A TypeError naming ``name`` unless ``value`` has a type ``annotation`` (``int``,
    ``str | None``...) allows; a bool is no number."""
    kind, _, optional = annotation.partition(" | ")
    if value is None and optional == "None":
        return
    allowed = JSON_TYPES.get(kind, (object,))
    if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
        raise TypeError(f"{name} {str(value)[:40]} is not {annotation}")


@dataclass
class JobSettings:
    """Everything a job needs to be run again the same way; stored in its journal.

    Memory settings left as None are chosen by the planner. With the ``openai`` backend the
    job runs on the server at ``base_url`` (its model ``server_model``, or the first it lists);
    ``n_ctx`` is then the server's context size, when it does not report one. ``speculate``
    (``off``, ``lookup``, or ``draft`` with ``draft_model``) is how the local engine decodes;
    speculating, the KV cache is quantized unless ``kv_type`` says which (see
    :func:`lwlocal.runtime.speculate.check_speculate`).
    """

    prompt: str
    words: int
    model: str | None = None
    mode: str = "agentwrite"
    n_ctx: int | None = None
    kv_type: str | None = None
    flash_attn: bool | None = None
    n_gpu_layers: int | None = None
    n_batch: int | None = None
    sections: int | None = None
    threads: int | None = None
    words_source: str = "option"  # where ``words`` came from: see lwlocal.write.length.SOURCES
    backend: str = "local"
    base_url: str | None = None
    server_model: str | None = None
    speculate: str = "off"
    draft_model: str | None = None  # with speculate "draft": a card name or GGUF path
    sampling: Sampling = field(default_factory=Sampling)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSettings:
        """The settings among ``data``'s keys (a journal's ``job.json``); others are ignored.
        A value of another type than its field's is a TypeError naming the field."""
        fields = cls.__dataclass_fields__
        given = {k: data[k] for k in fields if k != "sampling" and k in data}
        for name, value in given.items():
            check_type(name, value, str(fields[name].type))
        sampling = data.get("sampling", {})
        if not isinstance(sampling, dict):
            raise TypeError(f"sampling {str(sampling)[:40]} is not an object")
        for name, value in sampling.items():
            if name in Sampling.__dataclass_fields__:
                check_type(f"sampling.{name}", value, "float")
        return cls(**given, sampling=Sampling(**sampling))

    @property
    def overrides(self) -> Overrides:
        if self.kv_type or self.speculate == "off":
            return Overrides(self.n_ctx, self.kv_type, self.flash_attn, self.n_gpu_layers,
                             self.n_batch)
        return Overrides(self.n_ctx, None, self.flash_attn, self.n_gpu_layers, self.n_batch,
                         f"for {{speculate}} {self.speculate}: a quantized cache keeps its "
                         "output the same")

    @property
    def section_range(self) -> tuple[int, int]:
        """Fewest and most sections the outline may have."""
        return (self.sections, self.sections) if self.sections else section_range(self.words)

    @property
    def n_sections(self) -> int:
        """Sections the job will have at most."""
        return 1 if self.mode == "direct" else self.section_range[1]

    def on_backend(self, backend: str | None, base_url: str | None = None,
                   server_model: str | None = None, model: str | None = None) -> JobSettings:
        """These settings run elsewhere (a job resumed on another backend, server or model):
        the memory settings are chosen anew for it."""
        moved = replace(self, backend=backend or self.backend,
                        base_url=base_url or self.base_url,
                        server_model=server_model or self.server_model,
                        model=model or self.model)
        if moved.backend == "openai":  # a server decodes as it is set up to
            moved = replace(moved, speculate="off", draft_model=None)
        if (moved.backend, moved.base_url, moved.model) != (self.backend, self.base_url,
                                                            self.model):
            moved = replace(moved, n_ctx=None, kv_type=None, flash_attn=None,
                            n_gpu_layers=None, n_batch=None)
        return moved
