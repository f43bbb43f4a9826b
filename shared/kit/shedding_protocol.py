"""uvicorn's httptools protocol, answering the requests shed by delay itself.

Past capacity, a refusal must cost far less than an answer, or refusing takes the CPU
the answers need: on one event loop, a 503 built by the app costs an ASGI task, the
middleware, a response object and uvicorn's header checks, 0.59 of what web-single's
whole answer costs; answered here, 0.21 (``python -m loadtests.bench.shed_cost``,
loadtests/reports/overload.md). So while the app's
:class:`shared.kit.overload.InFlightLimit` says the queueing delay is over its target, this
protocol answers a request as soon as its headers are parsed, with the same 503 +
``Retry-After`` and JSON error the app would give (request id included), and never
starts the app for it. Its body, if any, is read and dropped by the parser as usual, so
the connection stays usable (keep-alive).

Left to the app: probes and scrapes (never shed), requests pipelined behind one still
being served, the in-flight count (it is known only inside the app) and everything
when the app is not a :class:`shared.kit.app.ServiceApp` (no guard found). Middleware that
would wrap the 503 (CORS headers, an API-key check) does not run for a request shed
here: under overload, an unauthenticated request is refused like any other.
"""

from __future__ import annotations

import os
import re
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from shared.kit.overload import REQUESTS_SHED, UNBOUNDED_PREFIXES, InFlightLimit

_UNBOUNDED = tuple(prefix.encode() for prefix in UNBOUNDED_PREFIXES)
_REQUEST_ID_HEADER = b"x-request-id"
_SANE_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")


class _NothingWaits:
    def set(self) -> None:
        """Nothing waits on a request the protocol answered itself."""


class _AnsweredCycle:
    """Stands for the request-response cycle of a request answered by the protocol."""

    response_complete = True
    disconnected = False
    message_event = _NothingWaits()


ANSWERED = _AnsweredCycle()


def find_guard(app: Any) -> InFlightLimit | None:
    """The :class:`InFlightLimit` of ``app`` under uvicorn's wrappers (each keeps the
    next one in ``.app``); None when there is none."""
    for _ in range(10):  # uvicorn wraps in two or three at most
        guard = getattr(app, "in_flight", None)
        if isinstance(guard, InFlightLimit):
            return guard
        app = getattr(app, "app", None)
        if app is None:
            return None
    return None


def request_id(headers: list[tuple[bytes, bytes]]) -> bytes:
    """The caller's ``X-Request-ID`` when sane, else a new one (as the middleware gives)."""
    for name, value in headers:
        if name == _REQUEST_ID_HEADER and _SANE_REQUEST_ID.match(value):
            return value
    return os.urandom(16).hex().encode()


def shed_answer(
    guard: InFlightLimit, rid: bytes, default_headers: list[tuple[bytes, bytes]], keep_alive: bool
) -> bytes:
    """The bytes of the 503 answer: status line, headers and the contract's JSON error."""
    body = orjson.dumps(
        {"error": {"code": "overloaded", "message": guard.message(), "request_id": rid.decode()}}
    )
    lines = [STATUS_LINE[503]]
    lines += [b"%s: %s\r\n" % header for header in default_headers]
    lines += [
        b"content-type: application/json\r\n",
        b"content-length: %d\r\n" % len(body),
        b"retry-after: %d\r\n" % guard.retry_after_s,
        b"x-request-id: " + rid + b"\r\n",
    ]
    if not keep_alive:
        lines.append(b"connection: close\r\n")
    lines += [b"\r\n", body]
    return b"".join(lines)


class SheddingHttpToolsProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` that answers a request shed by delay before the app runs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guard = find_guard(self.app)

    def on_headers_complete(self) -> None:
        """Shed here when the delay says so and the request is the app's to shed."""
        guard = self.guard
        if guard is not None and guard.delayed() and self._sheddable():
            self._shed(guard)
            return
        super().on_headers_complete()

    def _sheddable(self) -> bool:
        cycle = self.cycle
        return (
            (cycle is None or cycle.response_complete)  # not pipelined behind an answer
            and self.url.startswith(b"/")
            and not self.url.startswith(_UNBOUNDED)
            and not self.parser.should_upgrade()
        )

    def _shed(self, guard: InFlightLimit) -> None:
        REQUESTS_SHED.inc()
        keep_alive = self.parser.should_keep_alive()
        answer = shed_answer(
            guard, request_id(self.headers), self.server_state.default_headers, keep_alive
        )
        self.transport.write(answer)
        self.cycle = ANSWERED  # type: ignore[assignment]  # its body, if any, is dropped
        if keep_alive:
            self.on_response_complete()  # counts it, resumes reading, arms keep-alive
        else:
            self.transport.close()
