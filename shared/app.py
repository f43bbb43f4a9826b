"""The app factory every HTTP service starts from.

:func:`create_app` gives a FastAPI app with the house conventions wired in:
JSON errors (:mod:`shared.errors`), request ids, body limit, metrics and
access log (:mod:`shared.middleware`), ``/health/live``, ``/health/ready``,
``/metrics``, ``/docs`` and ``/redoc`` that need no network (:mod:`shared.docs`),
and a bound on the requests in flight (:mod:`shared.overload`). The service adds
its own routes.
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
from starlette.types import Receive, Scope, Send

from shared.docs import install_offline_docs
from shared.errors import ServiceError, install_error_handlers, service_error_response
from shared.health import Readiness, live, ready_endpoint
from shared.metrics import metrics_endpoint
from shared.middleware import RequestContextMiddleware
from shared.overload import InFlightLimit
from shared.schemas import ErrorResponse
from shared.settings import ServiceSettings

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]
Endpoint = Callable[[Request], Awaitable[Response]]

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in (
        (413, "The body is over the size limit."),
        (422, "The input is not what the endpoint takes; `field` names the bad part."),
        (
            503,
            "Over capacity (`overloaded`) or a dependency is down; "
            "retry after `Retry-After` seconds.",
        ),
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


class ServiceApp(FastAPI):
    """FastAPI whose hot routes bypass the framework's per-request machinery.

    A request for a hot route (see :func:`add_hot_route`) goes straight from
    :class:`RequestContextMiddleware` (request id, body limit, metrics, access
    log) to its endpoint: no Starlette middleware stack, router scan, dependency
    solving or exit stack, which together cost more than a small model's whole
    inference. Every other request (docs, health, metrics, the service's own
    ``@app.get`` routes) takes FastAPI's usual path, with the same middleware.
    """

    def __init__(
        self,
        *,
        max_body_bytes: int,
        log_requests: bool,
        in_flight: InFlightLimit | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.exact_hot_routes: dict[tuple[str, str], Route] = {}
        self.templated_hot_routes: list[Route] = []
        self.in_flight = in_flight or InFlightLimit(0)
        self._hot_stack = RequestContextMiddleware(
            self._serve_hot, max_body_bytes, log_requests, self.in_flight
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve hot routes directly; hand everything else to FastAPI."""
        if scope["type"] == "http":
            route = self.exact_hot_routes.get((scope["method"], scope["path"]))
            if route is None and self.templated_hot_routes:
                route = self._match_templated(scope)
            if route is not None:
                scope["route"] = route
                await self._hot_stack(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    def _match_templated(self, scope: Scope) -> Route | None:
        for route in self.templated_hot_routes:
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                scope.update(child_scope)
                return route
        return None

    async def _serve_hot(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = scope["route"].endpoint
        try:
            response = await endpoint(Request(scope, receive))
        except ServiceError as exc:
            response = service_error_response(exc)
        await response(scope, receive, send)


def create_app(
    settings: ServiceSettings,
    *,
    title: str,
    description: str = "",
    version: str = "0.1.0",
    readiness: Readiness | None = None,
    lifespan: Lifespan | None = None,
) -> ServiceApp:
    """A FastAPI app with health, metrics, request context, an in-flight bound and JSON errors."""
    in_flight = InFlightLimit(settings.max_requests_in_flight, settings.overload_retry_after_s)
    in_flight.publish()
    app = ServiceApp(
        title=title,
        description=description,
        version=version,
        lifespan=lifespan,
        docs_url=None,  # install_offline_docs serves them without a CDN
        redoc_url=None,
        max_body_bytes=settings.max_body_bytes,
        log_requests=settings.access_log,
        in_flight=in_flight,
    )
    install_error_handlers(app)
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        log_requests=settings.access_log,
        in_flight=in_flight,
    )
    app.state.readiness = readiness or Readiness()
    for path, endpoint in (
        ("/health/live", live),
        ("/health/ready", ready_endpoint(app.state.readiness)),
        ("/metrics", metrics_endpoint),
    ):
        app.add_api_route(path, endpoint, methods=["GET"], include_in_schema=False)
    install_offline_docs(app)
    return app


def add_hot_route(
    app: FastAPI,
    path: str,
    endpoint: Endpoint,
    *,
    request_model: type[BaseModel] | None,
    response_model: type[BaseModel],
    methods: tuple[str, ...] = ("POST",),
    status_code: int = 200,
    request_body: dict[str, Any] | None = None,
) -> None:
    """Serve ``endpoint`` at ``path`` on the hot path of a :class:`ServiceApp`.

    The endpoint takes the raw :class:`Request`, decodes the body itself (see
    :func:`shared.schemas.decode_instances`) and returns a :class:`Response`;
    :class:`shared.errors.ServiceError` it raises becomes the JSON error answer.
    An API route with the same path puts the endpoint in the OpenAPI docs (it
    also serves it when ``app`` is a plain FastAPI app); ``request_body`` documents
    a body that is not JSON (an OpenAPI ``requestBody`` object).
    """
    if isinstance(app, ServiceApp):
        route = Route(path, endpoint, methods=list(methods))
        if "{" in path:
            app.templated_hot_routes.append(route)
        else:
            for method in methods:
                app.exact_hot_routes[(method, path)] = route
    openapi_extra = {"requestBody": request_body} if request_body is not None else None
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
        responses=ERROR_RESPONSES,
        openapi_extra=openapi_extra,
        status_code=status_code,
    )
