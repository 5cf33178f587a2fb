"""Where and how ``lwlocal serve`` listens: the socket, bound before the model loads, whether an
address is this machine's alone, and uvicorn's logging with the server's own one-line notes."""

from __future__ import annotations

import copy
import ipaddress
import logging
import socket
from typing import Any

from lwlocal.util.errors import LwlocalError

log = logging.getLogger("lwlocal.serve")

SEND_BUFFER = 64 << 10  # bytes of kernel send buffer per connection (Linux doubles it)


class _CutOffNote(logging.Filter):
    """Drops uvicorn's error line on a response left incomplete: the only ones this app leaves
    are to clients cut off for not reading, which ``lwlocal.serve`` has noted already."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "ASGI callable returned without completing response."


def log_config() -> dict[str, Any]:
    """uvicorn's logging, with this server's one-line notes (``lwlocal.serve``) shown beside
    its warnings."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["cut_off"] = {"()": _CutOffNote}
    config["loggers"]["uvicorn.error"]["filters"] = ["cut_off"]
    config["loggers"][log.name] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """The socket to serve on, bound before the model loads (a one-line error where the address
    cannot be served). Its send buffer is fixed at ``SEND_BUFFER`` (connections inherit it), so
    that a streaming client that stops reading fills it soon and is cut off ``stall_seconds``
    later, rather than the kernel taking megabytes of a reply nobody reads (on loopback it
    would grow to 4 MiB)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise LwlocalError(f"{host}:{port}: cannot serve there ({exc.strerror})") from exc
    return sock
