"""Overload control: a bound on the requests a process serves at once.

Past the bound a request is answered at once with ``503`` + ``Retry-After`` and the
contract's JSON error (code ``overloaded``) instead of waiting behind the others: a
client (or its load balancer) retries elsewhere or later, and the requests already
admitted keep their latency. Health probes and ``/metrics`` are never shed, so an
overloaded replica stays visibly alive and measurable.

Uvicorn's ``limit_concurrency`` was the first choice but does not fit: it counts open
connections as well as requests (idle keep-alive connections count against it) and
answers a plain-text 503 without ``Retry-After``.
"""

from prometheus_client import Counter, Gauge
from starlette.responses import Response

from shared.errors import error_response
from shared.metrics import forget_dead_processes

REQUESTS_IN_FLIGHT = Gauge(
    "mlsp_http_requests_in_flight",
    "HTTP requests being served now (probes and scrapes left out).",
    multiprocess_mode="livesum",  # WEB_CONCURRENCY > 1: the live processes' requests together
)
REQUESTS_SHED = Counter(
    "mlsp_http_requests_shed",
    "HTTP requests answered 503 at once because the in-flight bound was reached.",
)
#: Paths that are never counted nor shed: probes and scrapes.
UNBOUNDED_PREFIXES = ("/health", "/metrics", "/v2/health")


class InFlightLimit:
    """Counts the requests in flight of one process and says when one is over the bound.

    One object per app, shared by every middleware instance that serves it (the hot
    path's and FastAPI's). The event loop is single-threaded, so a plain int is the
    whole counter (no lock); once published, the gauge follows it (``inc``/``dec``,
    which multiprocess mode writes to the process's file, where ``set_function``
    would not exist).

    The bound is per process: a container running ``WEB_CONCURRENCY`` processes admits
    up to that many times ``MAX_REQUESTS_IN_FLIGHT`` (the gauge shows their sum).
    """

    __slots__ = ("_gauge", "in_flight", "max_in_flight", "retry_after_s")

    def __init__(self, max_in_flight: int, retry_after_s: int = 1) -> None:
        self.max_in_flight = max_in_flight  # 0: no bound (still counted)
        self.in_flight = 0
        self.retry_after_s = retry_after_s
        self._gauge: Gauge | None = None

    def publish(self) -> None:
        """Count this app's requests in the process's ``mlsp_http_requests_in_flight``."""
        forget_dead_processes()
        self._gauge = REQUESTS_IN_FLIGHT
        self._gauge.inc(self.in_flight)

    def enter(self) -> None:
        """A request was admitted."""
        self.in_flight += 1
        if self._gauge is not None:
            self._gauge.inc()

    def leave(self) -> None:
        """An admitted request has been answered."""
        self.in_flight -= 1
        if self._gauge is not None:
            self._gauge.dec()

    def full(self) -> bool:
        """True when one more request would be over the bound."""
        return 0 < self.max_in_flight <= self.in_flight

    def shed(self) -> Response:
        """The answer to a request over the bound (counted in ``mlsp_http_requests_shed``)."""
        REQUESTS_SHED.inc()
        return error_response(
            503,
            "overloaded",
            f"over capacity ({self.max_in_flight} requests in flight); "
            f"retry after {self.retry_after_s} s",
            headers={"Retry-After": str(self.retry_after_s)},
        )
