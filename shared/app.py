"""The app factory every HTTP service starts from.

:func:`create_app` gives a FastAPI app with the house conventions wired in:
JSON errors (:mod:`shared.errors`), request ids, body limit, metrics and
access log (:mod:`shared.middleware`), ``/health/live``, ``/health/ready``
and ``/metrics``. The service adds its own routes.
"""

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import orjson
from fastapi import FastAPI
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope

from shared.errors import install_error_handlers
from shared.health import Readiness, live, ready_endpoint
from shared.metrics import metrics_endpoint
from shared.middleware import RequestContextMiddleware
from shared.schemas import ErrorResponse
from shared.settings import ServiceSettings

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]
Endpoint = Callable[[Request], Awaitable[Response]]

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in (
        (413, "The body is over the size limit."),
        (422, "The input is not what the endpoint takes; `field` names the bad part."),
        (503, "A dependency is down; retry after `Retry-After` seconds."),
        (504, "A dependency did not answer in time."),
    )
}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer serialised with orjson (numpy scalars and arrays allowed)."""
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
        status,
        headers,
        media_type="application/json",
    )


def create_app(
    settings: ServiceSettings,
    *,
    title: str,
    description: str = "",
    version: str = "0.1.0",
    readiness: Readiness | None = None,
    lifespan: Lifespan | None = None,
) -> FastAPI:
    """A FastAPI app with health, metrics, request context and JSON errors."""
    app = FastAPI(title=title, description=description, version=version, lifespan=lifespan)
    install_error_handlers(app)
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        log_requests=settings.access_log,
    )
    app.state.readiness = readiness or Readiness()
    # API routes (not plain Starlette ones) so the metrics see their route template.
    for path, endpoint in (
        ("/health/live", live),
        ("/health/ready", ready_endpoint(app.state.readiness)),
        ("/metrics", metrics_endpoint),
    ):
        app.add_api_route(path, endpoint, methods=["GET"], include_in_schema=False)
    return app


class _HotRoute(Route):
    """A plain Starlette route that still tells the metrics its path template."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self
        return match, child_scope


def add_hot_route(
    app: FastAPI,
    path: str,
    endpoint: Endpoint,
    *,
    request_model: type[BaseModel] | None,
    response_model: type[BaseModel],
    methods: tuple[str, ...] = ("POST",),
    status_code: int = 200,
) -> None:
    """Serve ``endpoint`` at ``path`` without FastAPI's per-request machinery.

    The endpoint takes the raw :class:`Request` and decodes the body itself
    (see :func:`shared.schemas.decode_instances`), which saves the dependency
    solving and exit-stack set-up FastAPI does for every request: about 60 µs,
    a quarter of a small model's whole request on two cores. A twin API route,
    added after it and so never matched, puts the endpoint in the OpenAPI docs
    (``status_code``: the success status it documents, e.g. 202 for a job).
    """
    app.router.routes.append(_HotRoute(path, endpoint, methods=list(methods)))
    openapi_extra = None
    if request_model is not None:
        openapi_extra = {
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": request_model.model_json_schema()}},
            }
        }
    app.add_api_route(
        path,
        endpoint,
        methods=list(methods),
        response_model=response_model,
        status_code=status_code,
        responses=ERROR_RESPONSES,
        openapi_extra=openapi_extra,
    )
