"""Overload control: shed what a process cannot serve in time, at once and cheaply.

Two signals, either one sheds:

* **Queueing delay** (:class:`QueueDelay`, ``OVERLOAD_DELAY_TARGET_MS``): CoDel's rule on
  the time a request waits before the app sees it, estimated by the event loop's lag
  (:class:`LoopLagProbe`: how late a periodic callback runs is how long the loop was busy
  with other work, which is how long a request read now waits for its turn). While the
  lag has stayed above the target for a whole interval, every new request is shed,
  until a sample comes in under it. A loop whose own CPU is the bottleneck (web-single)
  never holds many requests at once, so only this signal sees it; and bursts that pass
  in less than the interval are absorbed, not shed.
* **Count** (:class:`InFlightLimit`, ``MAX_REQUESTS_IN_FLIGHT``): a hard cap on the
  requests being served at once, for requests that wait on a peer (sync) rather than on
  the loop.

A shed request is answered ``503`` + ``Retry-After`` with the contract's JSON error (code
``overloaded``) instead of waiting behind the others: a client (or its load balancer)
retries elsewhere or later, and the requests already admitted keep their latency.
Health probes and ``/metrics`` are never shed, so an overloaded replica stays visibly
alive and measurable. Under :mod:`shared.kit.serve`, a request shed by delay is answered by
the HTTP protocol itself (:mod:`shared.kit.shedding_protocol`), before an ASGI task, the
middleware or a response object exist: past capacity, what a refusal costs is what
the answers lose.

Uvicorn's ``limit_concurrency`` was the first choice but does not fit: it counts open
connections as well as requests (idle keep-alive connections count against it) and
answers a plain-text 503 without ``Retry-After``.
"""

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator

from prometheus_client import Counter, Gauge
from starlette.responses import Response

from shared.kit.errors import error_response
from shared.kit.metrics import forget_dead_processes

REQUESTS_IN_FLIGHT = Gauge(
    "mlsp_http_requests_in_flight",
    "HTTP requests being served now (probes and scrapes left out).",
    multiprocess_mode="livesum",  # WEB_CONCURRENCY > 1: the live processes' requests together
)
REQUESTS_SHED = Counter(
    "mlsp_http_requests_shed",
    "HTTP requests answered 503 at once: over the in-flight bound or the queueing delay target.",
)
#: Paths that are never counted nor shed: probes and scrapes.
UNBOUNDED_PREFIXES = ("/health", "/metrics", "/v2/health")


class QueueDelay:
    """CoDel's rule on queueing-delay samples: overloaded once they stay above a target.

    ``observe`` takes each sample (seconds). Overloaded once every sample for
    ``interval_s`` has been over ``target_s``; no longer at the first sample at or under
    it. Within an interval of leaving that state, one sample over the target is enough to
    enter it again (as CoDel resumes dropping): a queue that came back at once is the
    same overload, not a new burst. ``clock`` is injectable so the rule can be tested
    without time passing.
    """

    __slots__ = ("_above_since", "_clock", "_left_at", "interval_s", "overloaded", "target_s")

    def __init__(
        self, target_s: float, interval_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if target_s <= 0 or interval_s <= 0:
            raise ValueError(f"target and interval must be > 0, not {target_s}, {interval_s}")
        self.target_s = target_s
        self.interval_s = interval_s
        self.overloaded = False
        self._clock = clock
        self._above_since: float | None = None
        self._left_at: float | None = None

    def observe(self, delay_s: float) -> None:
        """One sample of the time a request would wait now."""
        now = self._clock()
        if delay_s <= self.target_s:
            self._above_since = None
            if self.overloaded:
                self.overloaded = False
                self._left_at = now
            return
        if self._above_since is None:
            self._above_since = now
        came_back = self._left_at is not None and now - self._left_at < self.interval_s
        if came_back or now - self._above_since >= self.interval_s:
            self.overloaded = True


class LoopLagProbe:
    """Samples the running event loop's lag every ``period_s`` into ``observe``.

    The lag is how late a callback scheduled for a moment runs: the time the loop spent
    on other work first, which a request read at that moment would also wait. The
    callback costs a few microseconds (``period_s`` of 5 ms: about 0.1% of a core).
    """

    __slots__ = ("_due", "_handle", "_loop", "observe", "period_s")

    def __init__(self, observe: Callable[[float], None], period_s: float) -> None:
        self.observe = observe
        self.period_s = period_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0

    @property
    def running(self) -> bool:
        """True once started on a loop (and not stopped)."""
        return self._handle is not None

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Start sampling on ``loop`` (default: the running one); again: nothing more."""
        if self._handle is not None:
            return
        self._loop = loop or asyncio.get_running_loop()
        self._schedule(self._loop.time())

    def stop(self) -> None:
        """Stop sampling."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _schedule(self, now: float) -> None:
        assert self._loop is not None
        self._due = now + self.period_s
        self._handle = self._loop.call_at(self._due, self._tick)

    def _tick(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        self.observe(max(now - self._due, 0.0))
        self._schedule(now)


class InFlightLimit:
    """Says whether a request must be shed: over the in-flight count, or the queueing delay.

    One object per app, shared by every middleware instance that serves it (the hot
    path's and FastAPI's) and by the HTTP protocol of :mod:`shared.kit.shedding_protocol`.
    The event loop is single-threaded, so a plain int is the whole counter (no lock);
    once published, the gauge follows it (``inc``/``dec``, which multiprocess mode
    writes to the process's file, where ``set_function`` would not exist).

    Both bounds are per process: a container running ``WEB_CONCURRENCY`` processes admits
    up to that many times ``MAX_REQUESTS_IN_FLIGHT`` (the gauge shows their sum), and
    each process's loop has its own delay.
    """

    __slots__ = ("_gauge", "delay", "in_flight", "max_in_flight", "probe", "retry_after_s")

    def __init__(
        self,
        max_in_flight: int,
        retry_after_s: int = 1,
        *,
        delay: QueueDelay | None = None,
        probe_period_s: float = 0.005,
    ) -> None:
        self.max_in_flight = max_in_flight  # 0: no bound (still counted)
        self.in_flight = 0
        self.retry_after_s = retry_after_s
        self.delay = delay  # None: no shedding by delay
        self.probe = LoopLagProbe(delay.observe, probe_period_s) if delay is not None else None
        self._gauge: Gauge | None = None

    def publish(self) -> None:
        """Count this app's requests in the process's ``mlsp_http_requests_in_flight``."""
        forget_dead_processes()
        self._gauge = REQUESTS_IN_FLIGHT
        self._gauge.inc(self.in_flight)

    def watch_loop(self) -> None:
        """Start sampling the running loop's lag, when shedding by delay is on."""
        if self.probe is not None:
            self.probe.start()

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

    @contextlib.contextmanager
    def parked(self) -> Iterator[None]:
        """Within the block, an admitted request is not in flight: it only waits for an
        event (a long poll waiting for a job to end) and costs no work, so it must not take
        a place that the bound keeps for work. It counts again after the block."""
        self.leave()
        try:
            yield
        finally:
            self.enter()

    def full(self) -> bool:
        """True when one more request would be over the in-flight bound."""
        return 0 < self.max_in_flight <= self.in_flight

    def delayed(self) -> bool:
        """True while the queueing delay says shed (see :class:`QueueDelay`)."""
        return self.delay is not None and self.delay.overloaded

    def must_shed(self) -> bool:
        """True when a new request must be refused: over the count or the delay."""
        return self.full() or self.delayed()

    def message(self) -> str:
        """What a shed answer says."""
        return f"over capacity; retry after {self.retry_after_s} s"

    def shed(self) -> Response:
        """The answer to a request shed in the app (counted in ``mlsp_http_requests_shed``)."""
        REQUESTS_SHED.inc()
        return error_response(
            503,
            "overloaded",
            self.message(),
            headers={"Retry-After": str(self.retry_after_s)},
        )
