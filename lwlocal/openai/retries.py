"""Which failures of a request to a server are worth another try, and how long to wait: the
statuses a busy or restarting server answers, its ``Retry-After``, connection errors; and
:class:`Retry`, the report of a try that will be made again."""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from lwlocal.util.errors import LwlocalError

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
BACKOFF_CAP = 30.0  # seconds: the longest wait between two tries
RETRY_AFTER_CAP = 120.0  # seconds: the longest wait a server's Retry-After gets


class Retryable(Exception):
    """A failure worth another try (the server may be restarting or overloaded); ``wait`` is
    the seconds the server asked to wait (``Retry-After``), if it did."""

    def __init__(self, problem: str, wait: float | None = None) -> None:
        super().__init__(problem)
        self.wait = wait


@dataclass(frozen=True)
class Retry:
    """A failed try that will be made again: the one place its report is worded."""

    url: str
    attempt: int  # the try that failed, from 1
    tries: int  # all the tries there will be
    problem: str
    wait: float  # seconds until the next
    asked: bool  # the wait is the server's Retry-After

    def __str__(self) -> str:
        why = ", as the server asked (Retry-After)" if self.asked else ""
        return (f"{self.url}: try {self.attempt} of {self.tries} failed ({self.problem}); "
                f"trying again in {self.wait:.1f} s{why}")


def error_message(payload: Any) -> str:
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error or payload)[:200]


def check_status(response: httpx.Response, url: str) -> None:
    """Retry on the statuses a busy or restarting server answers; fail on the rest."""
    code = response.status_code
    if code < 400:
        return
    try:
        detail = error_message(response.json())
    except ValueError:
        detail = response.text[:200]
    if code in RETRY_STATUS:
        raise Retryable(f"HTTP {code}: {detail}", retry_after(response.headers.get("retry-after")))
    raise LwlocalError(f"{url}: HTTP {code}: {detail}")


def retry_after(value: str | None) -> float | None:
    """The seconds a ``Retry-After`` header asks for (a number of seconds or an HTTP date);
    None without one that can be read."""
    value = (value or "").strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # an HTTP date is GMT
            when = when.replace(tzinfo=datetime.timezone.utc)
        seconds = when.timestamp() - time.time()
    return max(0.0, seconds) if seconds == seconds else None  # NaN: unreadable


def transport_problem(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer in time ({type(exc).__name__})"
    return f"connection failed ({type(exc).__name__}: {exc})"
