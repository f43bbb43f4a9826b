"""Routes served without FastAPI's router, dependency solving and exit stack.

A hot route (``/predict``, ``/jobs/{id}``) takes the raw :class:`Request` and
returns a :class:`Response`; for a small model, the framework's per-request
machinery costs more than the inference. :class:`HotRoutes` holds them and
serves one; :class:`HotRouteDispatcher` is the pure-ASGI middleware that sits
innermost in the app's middleware stack (inside every middleware the service
or its user adds) and hands a hot route's request to :class:`HotRoutes`
instead of the router, so every added middleware (CORS, GZip, authentication,
tracing) runs on hot routes as on any other. :class:`shared.kit.app.ServiceApp`
skips the stack altogether when nobody added middleware.
"""

from starlette.requests import Request
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.kit.errors import ServiceError, service_error_response


class HotRoutes:
    """The hot routes of one app: exact paths by a dict lookup, templated ones in order."""

    def __init__(self) -> None:
        self.exact: dict[tuple[str, str], Route] = {}
        self.templated: list[Route] = []

    def add(self, route: Route, methods: tuple[str, ...]) -> None:
        """Serve ``route`` on the hot path for ``methods``."""
        if "{" in route.path:
            self.templated.append(route)
        else:
            for method in methods:
                self.exact[(method, route.path)] = route

    def match(self, scope: Scope) -> Route | None:
        """The hot route of an HTTP request, its path parameters put in ``scope``; else None."""
        route = self.exact.get((scope["method"], scope["path"]))
        if route is None and self.templated:
            for candidate in self.templated:
                match, child_scope = candidate.matches(scope)
                if match is Match.FULL:
                    scope.update(child_scope)
                    return candidate
        return route

    @staticmethod
    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        """Run the endpoint of ``scope["route"]``; a :class:`ServiceError` is its JSON answer."""
        try:
            response = await scope["route"].endpoint(Request(scope, receive))
        except ServiceError as exc:
            response = service_error_response(exc)
        await response(scope, receive, send)


class HotRouteDispatcher:
    """Pure-ASGI middleware: a hot route's request to :meth:`HotRoutes.serve`, others on."""

    def __init__(self, app: ASGIApp, routes: HotRoutes) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            route = self.routes.match(scope)
            if route is not None:
                scope["route"] = route
                await self.routes.serve(scope, receive, send)
                return
        await self.app(scope, receive, send)
