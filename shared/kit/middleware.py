"""One pure-ASGI middleware for what every request needs.

It gives each request an id (the caller's ``X-Request-ID`` when it sends a
sane one, else a new one), returns it in the answer and puts it in every log
line written while the request runs; refuses bodies over the limit with 413
(at once when ``Content-Length`` says so, else as soon as the count passes
it); counts the requests in flight and answers with 503 at once those over
the bound, or that come while the queueing delay says shed and were not already
refused by the server's protocol (:mod:`shared.kit.overload`); records the request in
Prometheus; and writes one access log line.

Written against ASGI directly rather than as ``BaseHTTPMiddleware``: that one
costs a task and a stream per request, which is most of a fast endpoint's time.
"""

import functools
import logging
import os
import re
import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.kit.errors import INTERNAL_ERROR_MESSAGE, PayloadTooLarge, error_response
from shared.kit.logs import request_id_var
from shared.kit.metrics import HTTP_LATENCY, HTTP_REQUESTS
from shared.kit.overload import UNBOUNDED_PREFIXES, InFlightLimit

access_log = logging.getLogger("access")
log = logging.getLogger("shared.kit.middleware")

REQUEST_ID_HEADER = b"x-request-id"
_SANE_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
# Probes and scrapes would drown the access log; they are logged at DEBUG.
_QUIET_PREFIXES = ("/health", "/metrics", "/v2/health")


class RequestContextMiddleware:
    """Request id, body limit, in-flight bound, metrics and access log for every HTTP request.

    ``in_flight`` is shared by the middleware instances of one app (see
    :class:`shared.kit.overload.InFlightLimit`); None: a count of this instance's own, no bound.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        log_requests: bool = True,
        in_flight: InFlightLimit | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.log_requests = log_requests
        self.in_flight = in_flight or InFlightLimit(0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id, declared_length = _read_headers(scope)
        token = request_id_var.set(request_id)
        status = 500
        response_started = False
        id_header = (REQUEST_ID_HEADER, request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        limit = self.in_flight
        admitted = shed = False
        if not scope["path"].startswith(UNBOUNDED_PREFIXES):
            shed = limit.must_shed()
            admitted = not shed
            if admitted:
                limit.enter()
        try:
            if shed:
                await limit.shed()(scope, receive, send_with_id)
            elif declared_length is None:  # chunked: count the bytes as they arrive
                await self.app(scope, self._limited(receive), send_with_id)
            elif declared_length > self.max_body_bytes:
                await self._too_large(scope, receive, send_with_id)
            else:  # the server delivers no more than Content-Length says
                await self.app(scope, receive, send_with_id)
        except Exception:
            # Answered here rather than by Starlette's outermost handler, so the
            # answer carries the request id and the metrics count it as a 500.
            log.exception("unhandled error")
            if response_started:  # too late for an error answer
                raise
            await error_response(500, "internal", INTERNAL_ERROR_MESSAGE)(
                scope, receive, send_with_id
            )
        finally:
            if admitted:
                limit.leave()
            self._record(scope, status, time.perf_counter() - started, quiet=shed)
            request_id_var.reset(token)

    def _record(self, scope: Scope, status: int, elapsed: float, *, quiet: bool) -> None:
        """The request in the metrics and the access log (``quiet``: at DEBUG).

        Shed requests are logged at DEBUG: they are counted in the metrics, and a log
        line each would spend, past capacity, the CPU that shedding saves.
        """
        route = scope.get("route")
        path = route.path if route is not None else "unmatched"
        method = scope["method"]
        _request_counter(path, method, status).inc()
        _latency_histogram(path, method).observe(elapsed)
        if self.log_requests:
            quiet = quiet or path.startswith(_QUIET_PREFIXES)
            level = logging.DEBUG if quiet else logging.INFO
            if access_log.isEnabledFor(level):
                access_log.log(
                    level,
                    "%s %s %d",
                    method,
                    scope["path"],
                    status,
                    extra={"status": status, "duration_ms": round(elapsed * 1000, 3)},
                )

    def _limited(self, receive: Receive) -> Receive:
        received = 0
        limit = self.max_body_bytes

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(f"the body is over the limit of {limit} bytes")
            return message

        return receive_limited

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413, PayloadTooLarge.code, f"the body is over the limit of {self.max_body_bytes} bytes"
        )
        await response(scope, receive, send)


@functools.cache
def _request_counter(path: str, method: str, status: int) -> Counter:
    # labels() validates and locks on every call; the children never change.
    return HTTP_REQUESTS.labels(path, method, str(status))


@functools.cache
def _latency_histogram(path: str, method: str) -> Histogram:
    return HTTP_LATENCY.labels(path, method)


def _read_headers(scope: Scope) -> tuple[str, int | None]:
    request_id = None
    length = None
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER and _SANE_REQUEST_ID.match(value):
            request_id = value.decode()
        elif name == b"content-length" and value.isdigit():
            length = int(value)
    return request_id or os.urandom(16).hex(), length
