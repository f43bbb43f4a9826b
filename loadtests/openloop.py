"""An open-loop load: requests sent at a fixed arrival rate, whatever the answers do.

Locust and wrk are closed loops: a user sends its next request when the last one is
answered, so a slow server is sent less and its queue never shows. Here request ``i``
of a run is due at ``start + i / rate``; every request due is sent, answered or not
(up to ``max_outstanding`` waiting at once: past that a request is counted as
``not sent``, never queued in the client). Requests share ``connections`` keep-alive
connections, as a client's pool would (a request waiting for a free one counts that
wait in its latency): a connection per waiting request would measure the host's
connection set-up, not the api. Each answer is tallied with its status and its
latency, from the moment it was sent, in the second it was due.

Bounded in count and time, and aimed at 127.0.0.1 only (:func:`check_url`).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp

#: Pseudo-statuses of requests that got no HTTP answer.
NO_ANSWER = 0  # timed out, refused or reset
NOT_SENT = -1  # max_outstanding requests were already waiting
MAX_RATE = 50_000  # requests/s
MAX_SECONDS = 300
LATE_S = 0.005  # a request sent later than this after its due time: the generator lagged


class LoadError(Exception):
    """A load that this generator refuses to send (the message says why)."""


def check_url(url: str) -> str:
    """``url`` when it names 127.0.0.1 over http; else :class:`LoadError`."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme != "http" or parsed.hostname != "127.0.0.1":
        raise LoadError(f"open-loop load goes to http://127.0.0.1 only, not {url!r}")
    return url


def check_load(rate: float, seconds: float) -> None:
    """Refuse a rate or a duration past the generator's bounds."""
    if not 0 < rate <= MAX_RATE:
        raise LoadError(f"rate {rate} req/s: give 0 < rate <= {MAX_RATE}")
    if not 0 < seconds <= MAX_SECONDS:
        raise LoadError(f"{seconds} s: give 0 < seconds <= {MAX_SECONDS}")


def percentile(values: list[float], share: float) -> float | None:
    """The nearest-rank percentile (``share`` 0..1) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(share * len(ordered)) - 1, 0)]


@dataclass
class Tally:
    """Every answer of a run: counts by second and status, latencies by kind (ms)."""

    per_second: dict[int, Counter[int]] = field(default_factory=dict)
    accepted_ms: list[float] = field(default_factory=list)
    shed_ms: list[float] = field(default_factory=list)
    late: int = 0

    def add(self, second: int, status: int, latency_s: float | None) -> None:
        """One request due in ``second`` of the run, answered ``status`` after ``latency_s``."""
        self.per_second.setdefault(second, Counter())[status] += 1
        if latency_s is None:
            return
        if 200 <= status < 300:
            self.accepted_ms.append(latency_s * 1000)
        elif status == 503:
            self.shed_ms.append(latency_s * 1000)

    def merge(self, other: Tally) -> None:
        """Add ``other``'s answers (of the same run, from another process) to these."""
        for second, counts in other.per_second.items():
            self.per_second.setdefault(second, Counter()).update(counts)
        self.accepted_ms += other.accepted_ms
        self.shed_ms += other.shed_ms
        self.late += other.late

    @property
    def statuses(self) -> Counter[int]:
        """How many requests got each status over the run."""
        total: Counter[int] = Counter()
        for counts in self.per_second.values():
            total.update(counts)
        return total

    def summary(self, seconds: float) -> dict[str, Any]:
        """The run's figures: offered and good rates, latency percentiles, statuses."""
        statuses = self.statuses
        due = sum(statuses.values())
        sent = due - statuses[NOT_SENT]
        accepted = sum(n for status, n in statuses.items() if 200 <= status < 300)
        return {
            "offered_per_s": sent / seconds,
            "goodput_per_s": accepted / seconds,
            "accepted_p50_ms": percentile(self.accepted_ms, 0.5),
            "accepted_p99_ms": percentile(self.accepted_ms, 0.99),
            "shed_p99_ms": percentile(self.shed_ms, 0.99),
            "late_share": self.late / due if due else 0.0,
            "statuses": {_status_name(s): n for s, n in sorted(statuses.items())},
        }


def _status_name(status: int) -> str:
    return {NO_ANSWER: "no answer", NOT_SENT: "not sent"}.get(status, str(status))


async def _send(
    session: aiohttp.ClientSession, url: str, body: bytes, second: int, tally: Tally
) -> None:
    started = time.monotonic()
    try:
        async with session.post(url, data=body, headers=_HEADERS) as answer:
            await answer.read()
            tally.add(second, answer.status, time.monotonic() - started)
    except (aiohttp.ClientError, TimeoutError):
        tally.add(second, NO_ANSWER, None)


_HEADERS = {"Content-Type": "application/json"}


async def open_loop(
    url: str,
    body: bytes,
    rate: float,
    seconds: float,
    *,
    start: float | None = None,
    timeout_s: float = 5.0,
    max_outstanding: int = 1000,
    connections: int = 64,
) -> Tally:
    """Send ``rate`` requests/s for ``seconds`` from ``start`` (``time.monotonic``; now)."""
    check_url(url)
    check_load(rate, seconds)
    tally = Tally()
    start = time.monotonic() if start is None else start
    total = int(rate * seconds)
    outstanding: set[asyncio.Task[None]] = set()
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        i = 0
        while i < total:
            now = time.monotonic()
            while i < total and start + i / rate <= now:  # everything due by now
                due = start + i / rate
                second = int(due - start)
                if now - due > LATE_S:
                    tally.late += 1
                if len(outstanding) >= max_outstanding:
                    tally.add(second, NOT_SENT, None)
                else:
                    task = asyncio.create_task(_send(session, url, body, second, tally))
                    outstanding.add(task)
                    task.add_done_callback(outstanding.discard)
                i += 1
            if i < total:
                await asyncio.sleep(max(start + i / rate - time.monotonic(), 0))
        if outstanding:
            await asyncio.wait(outstanding)
    return tally


async def closed_loop(url: str, body: bytes, users: int, seconds: float) -> Tally:
    """``users`` clients sending back to back for ``seconds``: the capacity a client sees."""
    check_url(url)
    check_load(users, seconds)
    tally = Tally()
    start = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=5.0)
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=users), timeout=timeout
    ) as session:

        async def user() -> None:
            while (now := time.monotonic()) < start + seconds:
                await _send(session, url, body, int(now - start), tally)

        await asyncio.gather(*(user() for _ in range(users)))
    return tally


@dataclass
class LoopFigures:
    """A closed-loop run as its clients saw it, and the machine's load average after it
    (all zero and None: not measured yet)."""

    rps: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    failed: int = 0
    load_average: float = 0.0

    def cells(self) -> str:
        """``requests/s | p50 (ms) | p99 (ms) | failed``: a report's markdown table cells."""
        return f"{self.rps:.0f} | {ms(self.p50_ms)} | {ms(self.p99_ms)} | {self.failed}"


def bench_parser(
    description: str, *, seconds: float, rounds: int, rounds_are: str
) -> argparse.ArgumentParser:
    """A side-by-side bench's command line: the api's ``--port``, the loop's ``--users`` and
    ``--seconds`` per run, how many ``--rounds`` (each one ``rounds_are``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, default=8000, help="the api's port on 127.0.0.1")
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=seconds)
    parser.add_argument("--rounds", type=int, default=rounds, help=rounds_are)
    return parser


def ms(value: float | None) -> str:
    """Milliseconds for a report's table: two decimals, ``n/a`` when not measured."""
    return "n/a" if value is None else f"{value:.2f}"


def measured_load(
    url: str, body: bytes, users: int, seconds: float, name: str = "", *, rate: float = 0.0
) -> LoopFigures:
    """Run :func:`closed_loop` (``users`` clients back to back) or, with a ``rate``,
    :func:`open_loop` (that many requests/s over ``users`` connections), and sum it up
    (printed as ``name``: answers other than 200 are failed)."""
    load = (
        open_loop(url, body, rate, seconds, connections=users)
        if rate
        else closed_loop(url, body, users, seconds)
    )
    summary = asyncio.run(load).summary(seconds)
    figures = LoopFigures(
        summary["goodput_per_s"],
        summary["accepted_p50_ms"],
        summary["accepted_p99_ms"],
        sum(n for status, n in summary["statuses"].items() if status != "200"),
        os.getloadavg()[0],
    )
    print(f"  {name}: {figures.rps:.0f} req/s, p50 {figures.p50_ms} ms, failed "
          f"{figures.failed}, load {figures.load_average:.1f}", flush=True)  # fmt: skip
    return figures
