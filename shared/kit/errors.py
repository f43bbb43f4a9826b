"""Errors a client can act on, and the handlers that turn them into JSON answers.

Every error answer has the same body::

    {"error": {"code": "invalid_input", "message": "...", "field": "instances[0][2]",
               "request_id": "..."}}

Nothing of a stack trace reaches the client: unexpected errors are logged with
their traceback and answered 500 with a generic message by
:class:`shared.kit.middleware.RequestContextMiddleware`.
"""

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from shared.kit.logs import request_id_var

log = logging.getLogger("shared.kit.errors")

INTERNAL_ERROR_MESSAGE = "internal error; the server log has the details"


class ServiceError(Exception):
    """Base of the errors answered with their own status and code."""

    status: int = 500
    code: str = "internal"

    def __init__(
        self, message: str, *, field: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.headers = headers or {}


class InvalidInput(ServiceError):
    """The request body is not what the endpoint takes (422, names the field)."""

    status = 422
    code = "invalid_input"


class PayloadTooLarge(ServiceError):
    """The body is over the configured limit (413)."""

    status = 413
    code = "payload_too_large"


class NotFound(ServiceError):
    """The thing asked for does not exist (404)."""

    status = 404
    code = "not_found"


class DependencyUnavailable(ServiceError):
    """A peer this request needs is down (503 with Retry-After)."""

    status = 503
    code = "dependency_unavailable"

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})

    @classmethod
    def peer_down(cls, peer: str) -> "DependencyUnavailable":
        """``peer`` cannot be reached (the message every client of a peer gives)."""
        return cls(f"{peer} is unavailable; retry shortly")


class DependencyTimeout(ServiceError):
    """A peer did not answer within its deadline (504)."""

    status = 504
    code = "dependency_timeout"

    @classmethod
    def waited(cls, peer: str, seconds: float) -> "DependencyTimeout":
        """``peer`` gave no answer within ``seconds`` (the message every caller of a peer gives)."""
        return cls(f"{peer} did not answer within {round(seconds, 3)} s")


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    """The JSON body of every error answer."""
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    request_id = request_id_var.get()
    if request_id is not None:
        error["request_id"] = request_id
    return {"error": error}


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """A JSON error answer."""
    return Response(
        orjson.dumps(error_body(code, message, field)),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p != "body"]
    path = ""
    for part in parts:
        path += f"[{part}]" if part.isdigit() else (f".{part}" if path else part)
    return path or "body"


def service_error_response(exc: ServiceError) -> Response:
    """The JSON answer for a :class:`ServiceError` (5xx ones are logged as warnings)."""
    if exc.status >= 500:
        log.warning("%s: %s", exc.code, exc.message)
    return error_response(exc.status, exc.code, exc.message, exc.field, exc.headers)


async def _service_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    return service_error_response(exc)


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0]
    field = _field_path(tuple(first.get("loc", ())))
    return error_response(422, "invalid_input", f"{field}: {first.get('msg')}", field)


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` with the JSON error body."""
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
