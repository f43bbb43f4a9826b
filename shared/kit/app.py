"""The app factory every HTTP service starts from.

:func:`create_app` gives a FastAPI app with the house conventions wired in:
JSON errors (:mod:`shared.kit.errors`), request ids, body limit, metrics and
access log (:mod:`shared.kit.middleware`), optional API keys (:mod:`shared.kit.api_keys`),
``/health/live``, ``/health/ready``, ``/metrics``, ``/docs`` and ``/redoc`` that
need no network (:mod:`shared.kit.offline_docs`), and a bound on the requests in flight
(:mod:`shared.kit.overload`). The service adds its own routes; middleware it or its
user adds runs on every route, the hot ones included (:class:`ServiceApp`).
"""

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import orjson
from fastapi import FastAPI
from pydantic import BaseModel
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.kit.api_keys import ApiKeyMiddleware, configured_keys
from shared.kit.errors import install_error_handlers
from shared.kit.health import Readiness, live, ready_endpoint
from shared.kit.hot_routes import HotRouteDispatcher, HotRoutes
from shared.kit.metrics import metrics_endpoint
from shared.kit.middleware import RequestContextMiddleware
from shared.kit.offline_docs import install_offline_docs
from shared.kit.overload import InFlightLimit, QueueDelay
from shared.kit.schemas import ErrorResponse
from shared.kit.settings import ServiceSettings
from shared.model.metadata import ModelMetadata

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]
# What a browser app may send and read across origins (CORS_ALLOW_ORIGINS).
CORS_REQUEST_HEADERS = ["Authorization", "X-API-Key", "Content-Type", "X-Request-ID"]
CORS_EXPOSED_HEADERS = ["X-Request-ID", "Retry-After"]
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

    A request for a hot route (see :func:`add_hot_route`) runs the same middleware
    stack as any other request, every middleware the service or its user adds
    included, and then goes straight to its endpoint (:mod:`shared.kit.hot_routes`): no
    router scan, dependency solving or exit stack, which together cost more than a
    small model's whole inference. While the only middleware is the house's own
    (:class:`RequestContextMiddleware`: request id, body limit, in-flight bound,
    metrics, access log), a hot request skips Starlette's stack too and goes from
    that middleware to its endpoint: the cheapest path, taken only when it runs
    exactly what the full stack would.
    """

    def __init__(self, *, in_flight: InFlightLimit | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hot_routes = HotRoutes()
        self.in_flight = in_flight or InFlightLimit(0)
        self._hot_shortcut: ASGIApp | None = None
        # Added first, so it stays innermost: inside every middleware added after it.
        self.add_middleware(HotRouteDispatcher, routes=self.hot_routes)

    def build_middleware_stack(self) -> ASGIApp:
        """FastAPI's stack; and the shortcut for hot routes when no middleware was added."""
        added = [m for m in self.user_middleware if m.cls not in _HOUSE_MIDDLEWARE]
        self._hot_shortcut = None if added else self._house_stack()
        return super().build_middleware_stack()

    def _house_stack(self) -> ASGIApp:
        app: ASGIApp = self.hot_routes.serve
        for middleware in reversed(self.user_middleware):
            if middleware.cls is not HotRouteDispatcher:
                app = middleware.cls(app, *middleware.args, **middleware.kwargs)
        return app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve hot routes by the shortcut when there is one; everything else through FastAPI.

        At start (the lifespan), the overload guard starts watching this process's loop.
        """
        if scope["type"] == "lifespan":
            self.in_flight.watch_loop()
        shortcut = self._hot_shortcut
        if shortcut is not None and scope["type"] == "http":
            route = self.hot_routes.match(scope)
            if route is not None:
                scope["route"] = route
                scope["app"] = self  # request.app.state, as behind Starlette's own __call__
                await shortcut(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


# Middleware the hot-route shortcut runs itself: any other one sends hot routes through the stack.
_HOUSE_MIDDLEWARE = (RequestContextMiddleware, HotRouteDispatcher)


def overload_guard(settings: ServiceSettings) -> InFlightLimit:
    """The in-flight bound and, when its target is above 0, the queueing-delay rule."""
    delay = None
    if settings.overload_delay_target_ms > 0:
        delay = QueueDelay(
            settings.overload_delay_target_ms / 1000, settings.overload_delay_interval_ms / 1000
        )
    return InFlightLimit(
        settings.max_requests_in_flight, settings.overload_retry_after_s, delay=delay
    )


def create_app(
    settings: ServiceSettings,
    *,
    title: str,
    description: str = "",
    version: str = "0.1.0",
    readiness: Readiness | None = None,
    lifespan: Lifespan | None = None,
) -> ServiceApp:
    """A FastAPI app with health, metrics, request context, an in-flight bound and JSON
    errors; API keys when ``API_KEYS``/``API_KEYS_FILE`` name some, CORS when
    ``CORS_ALLOW_ORIGINS`` does."""
    in_flight = overload_guard(settings)
    in_flight.publish()
    app = ServiceApp(
        title=title,
        description=description,
        version=version,
        lifespan=lifespan,
        docs_url=None,  # install_offline_docs serves them without a CDN
        redoc_url=None,
        in_flight=in_flight,
    )
    install_error_handlers(app)
    api_keys = configured_keys(settings)
    if api_keys:  # inside the request context: a refusal is counted, logged and has its id
        app.add_middleware(
            ApiKeyMiddleware, keys=api_keys, metrics_need_key=settings.metrics_need_key
        )
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        log_requests=settings.access_log,
        in_flight=in_flight,
    )
    origins = [o.strip() for o in settings.cors_allow_origins.split(",") if o.strip()]
    if origins:  # outermost: a preflight is answered before the key check, a 401 carries CORS
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["*"],
            allow_headers=CORS_REQUEST_HEADERS,
            expose_headers=CORS_EXPOSED_HEADERS,
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
    :func:`shared.kit.schemas.decode_instances`) and returns a :class:`Response`;
    :class:`shared.kit.errors.ServiceError` it raises becomes the JSON error answer.
    An API route with the same path puts the endpoint in the OpenAPI docs (it
    also serves it when ``app`` is a plain FastAPI app); ``request_body`` documents
    a body that is not JSON (an OpenAPI ``requestBody`` object).
    """
    if isinstance(app, ServiceApp):
        app.hot_routes.add(Route(path, endpoint, methods=list(methods)), methods)
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


#: What ``GET /model`` shows: one model's metadata, or a dict for a model made of several
#: (:func:`shared.v2.peers.composite_metadata`).
Describe = Callable[[], Awaitable[ModelMetadata | dict[str, Any]]]


def add_model_route(
    app: FastAPI,
    describe: Describe | None = None,
    *,
    response_model: type[BaseModel] | None = ModelMetadata,
) -> None:
    """``GET /model`` on ``app``: the metadata of the model served now.

    By default that of ``app.state.model``, the :class:`shared.serving.model.ServedModel` the
    lifespan put there (its :meth:`~shared.serving.model.ServedModel.served_metadata` follows a
    rolling update of the predictors); else what ``describe`` answers. A model made of
    several answers a dict: ``response_model=None`` documents it as a free-form object.
    """

    async def model_metadata(request: Request) -> Response:
        """The served model's metadata: name, version, tensors, labels, metrics, sha256."""
        described = await (describe or request.app.state.model.served_metadata)()
        if isinstance(described, BaseModel):
            described = described.model_dump()
        return json_response(described)

    app.add_api_route("/model", model_metadata, methods=["GET"], response_model=response_model)
