"""Handlers that cannot end the app: an exception in a screen's action or message handler is
reported by the app (a dialog and the log, the prompt and outline kept) and the app goes on."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from textual.message_pump import MessagePump

if TYPE_CHECKING:
    from lwlocal.tui.app import LwlocalApp

H = TypeVar("H", bound=Callable[..., Any])


def _report(owner: MessagePump, exc: Exception) -> None:
    cast("LwlocalApp", owner.app).report_failure(exc)


def guarded(handler: H) -> H:
    """``handler`` (a method of a screen or of the app, sync or async) with any exception
    reported rather than raised; Textual reads the handler's parameters through the wrapper."""
    if inspect.iscoroutinefunction(handler):
        @functools.wraps(handler)
        async def run_async(owner: MessagePump, *args: Any, **kwargs: Any) -> Any:
            try:
                return await handler(owner, *args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - reported, never the app's end
                _report(owner, exc)
                return None

        return cast(H, run_async)

    @functools.wraps(handler)
    def run(owner: MessagePump, *args: Any, **kwargs: Any) -> Any:
        try:
            return handler(owner, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - reported, never the app's end
            _report(owner, exc)
            return None

    return cast(H, run)
