"""Where and how to reach an OpenAI-compatible server: its address, key, model, context and how
often to try."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from lwlocal.openai.retries import Retry
from lwlocal.util.errors import SettingError

API_KEY_VARIABLES = ("LWLOCAL_API_KEY", "OPENAI_API_KEY")


@dataclass(frozen=True)
class Server:
    """Where and how to reach a server.

    ``model`` is the server's name for the model (None: the first it lists); ``n_ctx`` its
    context size (None: as the server reports it in ``max_model_len``, else unknown).
    ``timeout`` is the seconds to wait for the next byte; ``retries`` the tries after the first,
    ``backoff`` the first wait in seconds, doubled after each failure (up to 30 s) and jittered.
    ``slot`` is the server slot this client keeps to (llama-server's ``id_slot``), so that a
    job's turns find its prefix in that slot's KV cache whatever other clients send; it is used
    when the server reports at least that many slots, and ignored by other servers.
    ``on_retry`` hears of each failed try that will be made again (the command line prints it).
    """

    base_url: str
    api_key: str | None = None
    model: str | None = None
    n_ctx: int | None = None
    timeout: float = 600.0
    retries: int = 6
    backoff: float = 1.0
    slot: int | None = None
    on_retry: Callable[[Retry], None] | None = field(default=None, compare=False, repr=False)

    @property
    def url(self) -> str:
        """The API root, ``/v1`` added when the URL names no path."""
        url = self.base_url.rstrip("/")
        return url if httpx.URL(url).path not in ("", "/") else f"{url}/v1"

    @property
    def root(self) -> str:
        """The server's own root, where llama-server answers ``/props`` and ``/slots``."""
        url = self.url
        return url[: -len("/v1")] if url.endswith("/v1") else url

    def check(self) -> None:
        """Refuse an address that is not http(s)://host, in one line."""
        try:
            parsed = httpx.URL(self.base_url)
        except httpx.InvalidURL as exc:
            raise SettingError(f"{{base_url}} {self.base_url}: not a URL ({exc})") from exc
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise SettingError(f"{{base_url}} {self.base_url}: give http(s)://host:port/v1")

    def key(self) -> str | None:
        """The API key given, or from $LWLOCAL_API_KEY / $OPENAI_API_KEY (never stored)."""
        return self.api_key or next(
            (os.environ[v] for v in API_KEY_VARIABLES if os.environ.get(v)), None)
