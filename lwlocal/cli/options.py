"""Options several commands share, each group turned into one typed object, and the checks
that name the option a bad value came from."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import click

from lwlocal.openai.endpoint import Server
from lwlocal.openai.retries import Retry
from lwlocal.runtime.engine import Sampling
from lwlocal.runtime.kv_cache import KV_CACHE_TYPES
from lwlocal.runtime.speculate import SPECULATE_MODES
from lwlocal.util.errors import LwlocalError
from lwlocal.write.lookup_gain import Choice, auto_for
from lwlocal.write.settings import BACKENDS


def grouped(command: Callable[..., Any], options: tuple[Callable[..., Any], ...],
             name: str, build: Callable[..., Any], fields: tuple[str, ...]) -> Callable[..., Any]:
    """``command`` with ``options`` added, their values passed as one argument ``name``."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        kwargs[name] = build(**{field: kwargs.pop(field) for field in fields})
        return command(*args, **kwargs)

    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


@dataclass(frozen=True)
class MemoryOptions:
    """--ctx, --kv-type, --flash-attn, --ngl, --n-batch: what the user fixed of the memory plan
    (None: the planner chooses)."""

    ctx: int | None = None
    kv_type: str | None = None
    flash_attn: str | None = None
    ngl: int | None = None
    n_batch: int | None = None

    def settings(self) -> dict[str, Any]:
        """As JobSettings fields."""
        return {"n_ctx": self.ctx, "kv_type": self.kv_type,
                "flash_attn": None if self.flash_attn is None else self.flash_attn == "on",
                "n_gpu_layers": self.ngl, "n_batch": self.n_batch}


def memory_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Adds the memory options as ``memory: MemoryOptions``."""
    options = (
        click.option("--ctx", type=int, help="Context size in tokens (default: the plan's)."),
        click.option("--kv-type", type=click.Choice(KV_CACHE_TYPES), help="KV cache type."),
        click.option("--flash-attn", type=click.Choice(["on", "off"]), help="Flash attention."),
        click.option("--ngl", type=int, help="Layers to offload to the GPU."),
        click.option("--n-batch", type=int, help="Batch (and micro-batch) size."),
    )
    return grouped(command, options, "memory", MemoryOptions,
                    ("ctx", "kv_type", "flash_attn", "ngl", "n_batch"))


def sampling_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--temperature, --top-p, --repeat-penalty, --dry-multiplier, --seed as
    ``sampling: Sampling``."""
    options = (
        click.option("--temperature", type=float, default=Sampling.temperature,
                     show_default=True),
        click.option("--top-p", type=float, default=Sampling.top_p, show_default=True),
        click.option("--repeat-penalty", type=float, default=Sampling.repeat_penalty,
                     show_default=True),
        click.option("--dry-multiplier", type=float, default=Sampling.dry_multiplier,
                     show_default=True, help="DRY, against loops (0: off)."),
        click.option("--seed", type=int, default=Sampling.seed, show_default=True),
    )
    return grouped(command, options, "sampling", Sampling,
                    ("temperature", "top_p", "repeat_penalty", "dry_multiplier", "seed"))


@dataclass(frozen=True)
class Speculation:
    """--speculate off|lookup|draft MODEL: how the local model decodes (``mode`` None: as the
    job was started)."""

    mode: str | None = None
    draft_model: str | None = None

    def settings(self) -> dict[str, Any]:
        """As JobSettings fields."""
        return {"speculate": self.mode, "draft_model": self.draft_model}

    def __str__(self) -> str:
        return f"draft {self.draft_model}" if self.mode == "draft" else str(self.mode)

    def resolved(self, model: str | None, threads: int | None, *, remote: bool = False,
                 memory: MemoryOptions | None = None,
                 elsewhere: bool = False) -> tuple[Speculation, Choice | None]:
        """``auto`` made ``lookup`` or ``off`` for ``model`` (a card, GGUF or the default)
        with ``threads`` (default: the physical cores), with the choice, planning for this
        machine (``elsewhere``: another); others as given."""
        if self.mode != "auto":
            return self, None
        if elsewhere:
            return Speculation("off"), Choice("off", "lookup is measured on this machine, and "
                                                     "the plan is for another (--ram, --vram)")
        memory = memory or MemoryOptions()
        choice = auto_for(model, threads, remote=remote, kv_type=memory.kv_type,
                          flash_attn=memory.settings()["flash_attn"], n_gpu_layers=memory.ngl,
                          say=lambda line: click.echo(f"lwlocal: {line}", err=True))
        return Speculation(choice.mode), choice


def draft_model_as_option(args: list[str]) -> list[str]:
    """The command line with ``--speculate draft MODEL`` (or ``--speculate=draft MODEL``)
    written ``--speculate draft --draft-model MODEL``, the form click parses."""
    out, rest = [], list(args)
    while rest:
        arg = rest.pop(0)
        out.append(arg)
        if arg == "--":
            return out + rest
        if arg == "--speculate" and rest[:1] == ["draft"]:
            out.append(rest.pop(0))
            arg = "--speculate=draft"
        if arg == "--speculate=draft" and rest and not rest[0].startswith("-"):
            out += ["--draft-model", rest.pop(0)]
    return out


def said_resolved(speculation: Speculation, model: str | None, threads: int | None, *,
                  remote: bool = False, memory: MemoryOptions | None = None,
                  named: bool = False) -> Speculation:
    """:meth:`Speculation.resolved`, the choice for ``auto`` said on standard error (naming
    the model where ``named``: one of several)."""
    resolved, choice = speculation.resolved(model, threads, remote=remote, memory=memory)
    if choice is not None:
        which = f" for {model}" if named else ""
        click.echo(f"lwlocal: --speculate auto{which}: {choice.mode} ({choice.reason})",
                   err=True)
    return resolved


class SpeculatingCommand(click.Command):
    """A command with :func:`speculate_option`, whose ``draft`` takes a second value."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, draft_model_as_option(args))


def speculate_option(default: str | None) -> Callable[..., Any]:
    """--speculate as ``speculate: Speculation`` (default None: as the job was started), with
    ``auto`` among its values (the command resolves it: :meth:`Speculation.resolved`); the
    command needs ``cls=SpeculatingCommand``."""
    kept = "" if default else " (default: as the job was started)"
    modes = (*SPECULATE_MODES, "auto")
    options = (
        click.option(
            "--speculate", type=click.Choice(modes), default=default,
            show_default=default is not None, metavar="|".join(modes).replace("draft",
                                                                             "draft MODEL"),
            help=f"lookup: guess the next tokens from the conversation so far; draft MODEL: "
                 f"have a small model with the same tokenizer (card or GGUF) guess them; "
                 f"either checked in one batch (the same output, over a quantized KV cache: "
                 f"the plan's choice on the CPU); auto: lookup where it is measured to pay on "
                 f"this machine and model, else off (see docs/speculation.md){kept}."),
        click.option("--draft-model", hidden=True),  # what follows --speculate draft
    )

    def build(speculate: str | None, draft_model: str | None) -> Speculation:
        return Speculation(speculate, draft_model)

    def add(command: Callable[..., Any]) -> Callable[..., Any]:
        return grouped(command, options, "speculate", build, ("speculate", "draft_model"))

    return add


@dataclass(frozen=True)
class ServerOptions:
    """--backend, --base-url, --api-key, --server-model, --timeout, --retries: where to write
    (``more_urls``: the further --base-url a command that spreads its jobs takes)."""

    backend: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    server_model: str | None = None
    timeout: float = Server.timeout
    retries: int = Server.retries
    more_urls: tuple[str, ...] = ()

    def server(self, n_ctx: int | None = None) -> Server | None:
        """The server to write on, or None for the local backend."""
        if self.backend != "openai":
            if self.base_url or self.server_model:
                raise LwlocalError("--base-url and --server-model need --backend openai")
            return None
        if not self.base_url:
            raise LwlocalError("--backend openai needs --base-url (e.g. "
                               "http://127.0.0.1:8080/v1)")
        if self.timeout <= 0 or self.retries < 0:
            raise LwlocalError("--timeout must be positive and --retries at least 0")
        return Server(self.base_url, self.api_key, self.server_model, n_ctx, self.timeout,
                      self.retries, on_retry=report_retry)

    def servers(self) -> list[Server]:
        """Every server given, in order (none for the local backend)."""
        first = self.server()
        return [replace(first, base_url=url) for url in (first.base_url, *self.more_urls)
                ] if first else []


def report_retry(retry: Retry) -> None:
    """A request to the server that failed and will be tried again, in one line on stderr
    (above the progress display)."""
    click.echo(f"lwlocal: {retry}", err=True)


def server_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Adds the server options as ``server: ServerOptions``."""
    return _server_options(command, several=False)


def servers_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The server options, --base-url repeatable (the jobs spread over the servers), as
    ``server: ServerOptions``."""
    return _server_options(command, several=True)


def _server_options(command: Callable[..., Any], several: bool) -> Callable[..., Any]:
    options = (
        click.option("--backend", type=click.Choice(BACKENDS), default=None,
                     help="local (llama.cpp here, the default) or openai (an OpenAI-compatible "
                          "server: llama-server, vLLM, Ollama, lwlocal serve)."),
        click.option("--base-url", multiple=several,
                     help="The server's API root, e.g. http://127.0.0.1:8080/v1" + (
                         " (again for each further server: each job goes to the one with "
                         "the fewest jobs in flight)." if several else ".")),
        click.option("--api-key", help="The server's API key (default: $LWLOCAL_API_KEY or "
                                       "$OPENAI_API_KEY; never saved in the journal)."),
        click.option("--server-model", help="The server's model name (default: the first it "
                                            "lists)."),
        click.option("--timeout", type=float, default=Server.timeout, show_default=True,
                     help="Seconds to wait for the server's next byte before retrying."),
        click.option("--retries", type=int, default=Server.retries, show_default=True,
                     help="Tries after the first on connection errors, 429, 5xx and broken "
                          "streams (exponential backoff with jitter)."),
    )

    def build(base_url: str | tuple[str, ...] | None, **fields: Any) -> ServerOptions:
        urls = base_url if isinstance(base_url, tuple) else (base_url,) if base_url else ()
        return ServerOptions(base_url=urls[0] if urls else None, more_urls=urls[1:], **fields)

    return grouped(command, options, "server", build,
                    ("backend", "base_url", "api_key", "server_model", "timeout", "retries"))


def backend_settings(server: Server | None) -> dict[str, Any]:
    """JobSettings fields for where the job runs."""
    if server is None:
        return {}
    return {"backend": "openai", "base_url": server.base_url, "server_model": server.model}


def gib_option(value: str | None, name: str) -> int | None:
    """A ``--ram``/``--vram`` value in GiB as bytes, or a one-line error."""
    if value is None:
        return None
    try:
        gib = float(value)
    except ValueError:
        gib = math.nan
    if not math.isfinite(gib) or gib < 0 or gib > 1e6 or (name == "--ram" and gib == 0):
        raise LwlocalError(f"{name} {value}: not a sensible amount of memory in GiB")
    return int(gib * 2**30)
