"""Shedding by queueing delay: CoDel's rule on a fake clock, the lag probe on a fake loop,
and the 503 that uvicorn's protocol answers itself (no app task) while the rule says shed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY
from starlette.types import Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.server import ServerState

from shared.kit.app import create_app, overload_guard
from shared.kit.overload import InFlightLimit, LoopLagProbe, QueueDelay
from shared.kit.settings import ServiceSettings
from shared.kit.shedding_protocol import SheddingHttpToolsProtocol, find_guard

TARGET, INTERVAL = 0.005, 0.1


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def rule() -> tuple[QueueDelay, FakeClock]:
    clock = FakeClock()
    return QueueDelay(TARGET, INTERVAL, clock=clock), clock


def test_a_burst_shorter_than_the_interval_is_absorbed() -> None:
    delay, clock = rule()
    for _ in range(9):  # 90 ms over the target
        delay.observe(0.050)
        assert not delay.overloaded
        clock.now += 0.010
    delay.observe(0.001)  # the queue is gone before the interval is up
    clock.now += 0.010
    delay.observe(0.050)
    assert not delay.overloaded  # a new burst starts its own interval


def test_a_delay_over_the_target_for_the_interval_sheds_until_a_sample_under_it() -> None:
    delay, clock = rule()
    delay.observe(0.006)
    clock.now += INTERVAL
    delay.observe(0.006)
    assert delay.overloaded
    clock.now += 1.0
    delay.observe(0.020)
    assert delay.overloaded  # stays while the delay does
    delay.observe(TARGET)  # at the target is not over it
    assert not delay.overloaded


def test_a_delay_that_comes_back_within_the_interval_sheds_at_once() -> None:
    delay, clock = rule()
    delay.observe(0.050)
    clock.now += INTERVAL
    delay.observe(0.050)
    delay.observe(0.001)
    assert not delay.overloaded
    clock.now += INTERVAL / 2
    delay.observe(0.050)
    assert delay.overloaded  # the same overload, not a new burst
    delay.observe(0.001)
    clock.now += INTERVAL * 2
    delay.observe(0.050)
    assert not delay.overloaded  # long after: a burst again, absorbed for an interval


@pytest.mark.parametrize(("target", "interval"), [(0, 0.1), (0.005, 0), (-1, 0.1)])
def test_a_rule_without_a_positive_target_and_interval_is_refused(
    target: float, interval: float
) -> None:
    with pytest.raises(ValueError, match="must be > 0"):
        QueueDelay(target, interval)


class FakeLoop:
    """The two things the probe asks of a loop: the time, and a callback at a time."""

    def __init__(self) -> None:
        self.now = 50.0
        self.scheduled: list[tuple[float, Any]] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Any) -> asyncio.TimerHandle:
        self.scheduled.append((when, callback))
        return asyncio.TimerHandle(when, callback, (), asyncio.new_event_loop())

    def run_next(self, late_by: float) -> None:
        when, callback = self.scheduled.pop(0)
        self.now = when + late_by
        callback()


def test_the_probe_reports_how_late_its_callback_ran_and_reschedules() -> None:
    samples: list[float] = []
    probe = LoopLagProbe(samples.append, period_s=0.005)
    loop = FakeLoop()
    probe.start(loop)  # type: ignore[arg-type]
    probe.start(loop)  # type: ignore[arg-type]  # again: still one callback
    assert [when for when, _ in loop.scheduled] == [50.005]
    loop.run_next(late_by=0.030)  # the loop was busy 30 ms past the due time
    loop.run_next(late_by=0.0)
    assert samples == [pytest.approx(0.030), 0.0]
    assert loop.scheduled[0][0] == pytest.approx(50.005 + 0.030 + 0.005 + 0.005)
    probe.stop()
    assert not probe.running


def test_the_guard_sheds_on_either_signal_and_the_delay_rule_is_off_at_target_zero() -> None:
    delay, _ = rule()
    guard = InFlightLimit(2, delay=delay)
    assert not guard.must_shed()
    delay.overloaded = True
    assert guard.must_shed()
    assert guard.delayed()
    assert not guard.full()
    delay.overloaded = False
    guard.in_flight = 2
    assert guard.must_shed()
    assert guard.full()
    assert not guard.delayed()
    off = overload_guard(ServiceSettings(overload_delay_target_ms=0))
    assert off.delay is None
    assert off.probe is None
    assert not off.delayed()
    on = overload_guard(ServiceSettings(overload_delay_target_ms=7, overload_delay_interval_ms=50))
    assert on.delay is not None
    assert (on.delay.target_s, on.delay.interval_s) == (0.007, 0.05)


# --- the protocol: raw bytes in, bytes out, through a transport that keeps what it is given


class Transport:
    def __init__(self) -> None:
        self.written = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 5000)}.get(name, default)

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


class CountingApp:
    """The service app under a wrapper, as uvicorn gives it: counts the requests it sees."""

    def __init__(self, guard_delay: QueueDelay) -> None:
        self.app = create_app(
            ServiceSettings(overload_retry_after_s=3, overload_delay_target_ms=0), title="t"
        )
        self.app.in_flight.delay = guard_delay
        self.seen: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.seen.append(scope["path"])
        await self.app(scope, receive, send)


def post(path: str = "/predict", extra: bytes = b"") -> bytes:
    body = b'{"instances": [[1, 2, 3, 4]]}'
    return (
        b"POST " + path.encode() + b" HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        + extra + b"Content-Length: %d\r\n\r\n" % len(body) + body
    )  # fmt: skip


def answers(written: bytes) -> list[tuple[str, dict[str, str], bytes]]:
    """The HTTP answers in ``written``: status line, headers, body (by content-length)."""
    found = []
    while written:
        head, rest = written.split(b"\r\n\r\n", 1)
        status, *lines = head.decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
        length = int(headers["content-length"])
        found.append((status, headers, rest[:length]))
        written = rest[length:]
    return found


def settle(protocol: SheddingHttpToolsProtocol) -> None:
    """Run the app tasks the protocol started, to their answers."""
    protocol.loop.run_until_complete(asyncio.gather(*protocol.tasks))


@pytest.fixture
def wired() -> Iterator[tuple[SheddingHttpToolsProtocol, CountingApp, Transport, QueueDelay]]:
    delay, _ = rule()
    app = CountingApp(delay)
    config = Config(app=app, proxy_headers=True, lifespan="off")
    config.load()
    loop = asyncio.new_event_loop()
    protocol = SheddingHttpToolsProtocol(
        config=config, server_state=ServerState(), app_state={}, _loop=loop
    )
    transport = Transport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    yield protocol, app, transport, delay
    loop.close()


def shed_total() -> float:
    return REGISTRY.get_sample_value("mlsp_http_requests_shed_total") or 0.0


def test_the_guard_is_found_under_uvicorns_wrappers(wired: Any) -> None:
    protocol, app, _, _ = wired
    assert protocol.guard is app.app.in_flight
    assert find_guard(object()) is None


def test_while_the_delay_says_shed_the_protocol_answers_503_json_and_the_app_sees_nothing(
    wired: Any,
) -> None:
    protocol, app, transport, delay = wired
    delay.overloaded = True
    before = shed_total()
    protocol.data_received(post(extra=b"X-Request-ID: abc-1\r\n") + post())
    assert app.seen == []
    (status, headers, body), (_, other_headers, other_body) = answers(transport.written)
    assert status == "HTTP/1.1 503 Service Unavailable"
    assert headers["content-type"] == "application/json"
    assert headers["retry-after"] == "3"
    assert headers["x-request-id"] == "abc-1"
    error = orjson.loads(body)["error"]
    assert error == {
        "code": "overloaded",
        "message": "over capacity; retry after 3 s",
        "request_id": "abc-1",
    }
    # Without an id of the caller's, a new one, the same in the header and the body.
    assert orjson.loads(other_body)["error"]["request_id"] == other_headers["x-request-id"]
    assert len(other_headers["x-request-id"]) == 32
    assert shed_total() == before + 2
    assert not transport.closed  # keep-alive: the connection serves on


def test_probes_are_left_to_the_app_and_requests_go_to_it_once_the_delay_is_gone(
    wired: Any,
) -> None:
    protocol, app, transport, delay = wired
    delay.overloaded = True
    protocol.data_received(b"GET /health/live HTTP/1.1\r\nHost: t\r\n\r\n")
    settle(protocol)
    delay.overloaded = False
    protocol.data_received(post())
    settle(protocol)
    assert app.seen == ["/health/live", "/predict"]
    statuses = [status for status, _, _ in answers(transport.written)]
    assert statuses == ["HTTP/1.1 200 OK", "HTTP/1.1 404 Not Found"]  # the app's own answers


def test_a_request_that_asks_to_close_is_shed_and_the_connection_closed(wired: Any) -> None:
    protocol, app, transport, delay = wired
    delay.overloaded = True
    protocol.data_received(post(extra=b"Connection: close\r\n"))
    ((status, headers, _),) = answers(transport.written)
    assert status.startswith("HTTP/1.1 503")
    assert headers["connection"] == "close"
    assert transport.closed
    assert app.seen == []
