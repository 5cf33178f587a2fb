"""``lwlocal serve``'s ASGI middleware: the API key check, and each connection's socket in its
scope."""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from lwlocal.openai.errors import error_response

SOCKET = "lwlocal.socket"  # the scope key of the connection's socket


class WithSocket:
    """ASGI middleware: each HTTP connection's socket in ``scope[SOCKET]`` where the server
    has one (uvicorn's ``send`` is a method of the connection's cycle, which holds its
    transport); absent elsewhere (an in-process client)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        transport = getattr(getattr(send, "__self__", None), "transport", None)
        if scope["type"] == "http" and transport is not None:
            scope = {**scope, SOCKET: transport.get_extra_info("socket")}
        await self.app(scope, receive, send)


class KeyCheck:
    """ASGI middleware: every route but ``/health`` wants ``Authorization: Bearer KEY``,
    compared in constant time."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app, self.key = app, key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] != "/health":
            given = dict(scope["headers"]).get(b"authorization", b"")
            scheme, _, token = given.partition(b" ")
            valid = hmac.compare_digest(token.strip(), self.key)  # before the scheme: no shortcut
            if not (valid and scheme.lower() == b"bearer"):
                response = error_response(
                    401, "a valid API key is needed (Authorization: Bearer KEY)",
                    code="invalid_api_key")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
