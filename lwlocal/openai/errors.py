"""``lwlocal serve``'s errors as OpenAI answers them: ``{"error": {"message", "type", "param",
"code"}}``, which the ``openai`` client turns into its typed exceptions."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from lwlocal.util.errors import LwlocalError


class BodyTooLarge(LwlocalError):
    """A request body over the server's limit."""


class UnknownModel(LwlocalError):
    """A request for a model this server does not serve."""


def error_body(status: int, message: str, kind: str = "invalid_request_error",
               code: str | None = None, param: str | None = None) -> dict[str, Any]:
    """An OpenAI-style error: ``code`` is OpenAI's word for it where it has one, else the
    status (as llama-server and vLLM send it)."""
    return {"error": {"message": message, "type": kind, "param": param,
                      "code": status if code is None else code}}


def error_response(status: int, message: str, kind: str = "invalid_request_error",
                   code: str | None = None, param: str | None = None) -> JSONResponse:
    """An OpenAI-style error answer."""
    return JSONResponse(error_body(status, message, kind, code, param), status_code=status)


def model_not_found(exc: UnknownModel) -> JSONResponse:
    return error_response(404, str(exc), code="model_not_found", param="model")


def failure(exc: Exception) -> tuple[int, str, str]:
    """A generation's failure as a status, message and error type: the request's fault (a
    :class:`LwlocalError`) or the server's."""
    if isinstance(exc, LwlocalError):
        return 400, str(exc), "invalid_request_error"
    return 500, str(exc) or type(exc).__name__, "server_error"


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, exc.detail)


async def internal_error(request: Request, exc: Exception) -> Response:
    return error_response(500, "the server failed on this request (see its log)", "server_error")
