"""hey (Go, the Debian package ``hey``) as the overload run's load generator, on a core of its own.

The Python open loop (:mod:`loadtests.openloop`) sends a few thousand requests/s from one
core: less than twice what one core of the api answers. hey sends from the same core
several times that. ``hey -c N -q R`` runs N workers, each on its own keep-alive
connection, each sending at most R requests/s: a fixed arrival rate of N x R as long as
an answer comes back within a worker's interval (1/R); a worker whose answer is later
than that sends late, and fewer (Go's ticker drops the ticks it missed). So what hey
really sent is read from its output, never assumed: :func:`parse_csv` keeps every
request's status, latency and send time, and the overload run judges a load by the rate
that went out (:func:`loadtests.bench.overload_report.shortfall`). One hey's workers tick
in step (bursts of N at once), so a load is shared by :data:`PROCESSES` hey processes
started apart (:func:`run`).

``-o csv`` lists each request that got an HTTP answer; one that got none (timed out,
refused, reset) is not listed, so it counts as never sent: the sent rate is then an
under-count, never an over-count.

Bounded in time and rate (:func:`loadtests.openloop.check_load`) and aimed at 127.0.0.1
only (:func:`loadtests.openloop.check_url`).
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
import subprocess
import tempfile
import time

from loadtests.openloop import MAX_RATE, LoadError, Tally, check_load, check_url

PACKAGE = "hey"
#: The columns of ``hey -o csv`` (hey 0.1.4, Debian bookworm): seconds, except the status.
COLUMNS = (
    "response-time",
    "DNS+dialup",
    "DNS",
    "Request-write",
    "Response-delay",
    "Response-read",
    "status-code",
    "offset",
)
TIMEOUT_S = 5
#: hey processes a load is shared by, started apart (:func:`run`): bursts of 1024 / 64.
#: Beside 16, 64 cut the refusals at 80% of web-single's capacity from 1492 to 279 (both at
#: 1024 connections, 2026-12-04): the api and the edge see smaller bursts.
PROCESSES = 64
#: Go's garbage collector target for hey (``GOGC``): hey keeps every request's figures for
#: its CSV, and on one CPU each collection stalls every worker of that process. Measured at
#: 7.6k req/s to an edge refusing all (2026-12-04): 503 p99 8.1 ms with Go's default 100,
#: 4.6 ms with 800, 4.3 ms with collection off; 800 keeps hey's memory bounded.
GOGC = "800"
HEY_ENV = os.environ | {"GOGC": GOGC}


def require_hey() -> str:
    """The path of hey; :class:`LoadError` naming the package when it is not installed."""
    path = shutil.which("hey")
    if path is None:
        raise LoadError(f"needs hey on the PATH: apt-get install {PACKAGE} (Debian package)")
    return path


def command(
    url: str, body: bytes, *, connections: int, seconds: float, rate: float, core: int | None
) -> list[str]:
    """The hey command line: ``connections`` workers for ``seconds``, ``rate`` requests/s
    in all (0: each worker back to back, a closed loop), POSTing ``body`` as JSON, every
    request listed as CSV; run on CPU ``core`` (``taskset``) when given."""
    check_url(url)
    check_load(rate or MAX_RATE, seconds)
    if connections < 1:
        raise LoadError(f"{connections} connections: give 1 or more")
    hey = [require_hey(), "-c", str(connections), "-z", f"{seconds:g}s"]
    if rate:
        hey += ["-q", f"{rate / connections:.6g}"]
    hey += ["-t", str(TIMEOUT_S), "-m", "POST", "-T", "application/json", "-d", body.decode()]
    hey += ["-o", "csv", url]
    if core is None:
        return hey
    return ["taskset", "--cpu-list", str(core), hey[0], "-cpus", "1", *hey[1:]]


def parse_csv(text: str) -> Tally:
    """hey's ``-o csv`` output as a :class:`Tally`: each listed request in the second it was
    sent (its offset from the run's start), with its status and latency.
    :class:`LoadError` when the text is not hey's CSV."""
    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    if header is None or tuple(h.strip() for h in header) != COLUMNS:
        raise LoadError(f"not hey's CSV output (header {header!r}, expected {','.join(COLUMNS)})")
    tally = Tally()
    for number, row in enumerate(rows, start=2):
        if not row:
            continue
        try:
            latency_s, status, offset_s = float(row[0]), int(row[6]), float(row[7])
        except (IndexError, ValueError):
            raise LoadError(f"hey's CSV line {number} is not a request: {row!r}") from None
        tally.add(int(offset_s), status, latency_s)
    return tally


def stagger(connections: int, rate: float, processes: int) -> float:
    """Seconds between the starts of ``processes`` hey processes sharing ``connections`` and
    ``rate``: a worker's interval (``connections / rate``) over ``processes``, so their
    bursts fall evenly apart; 0 for a closed loop (no rate)."""
    return connections / rate / processes if rate else 0.0


def run(
    url: str,
    body: bytes,
    *,
    connections: int,
    seconds: float,
    rate: float = 0.0,
    core: int | None = None,
    processes: int = PROCESSES,
) -> Tally:
    """Run ``processes`` hey processes (see :func:`command`), ``connections`` and ``rate``
    shared out, started :func:`stagger` apart, and tally what they listed together;
    :class:`LoadError` when one fails.

    One hey's workers start together and their tickers stay in step: ``-c 256 -q R`` sends
    bursts of 256 requests, one every 1/R s, not a steady rate. Processes started apart
    cut the bursts to ``connections / processes`` requests, ``processes`` times as often.
    """
    if not 1 <= processes <= connections:
        raise LoadError(f"{processes} hey processes for {connections} connections")
    each = [connections // processes + (i < connections % processes) for i in range(processes)]
    apart = stagger(connections, rate, processes)
    with contextlib.ExitStack() as stack:
        started = []
        for i, share in enumerate(each):
            out = stack.enter_context(tempfile.TemporaryFile("w+"))
            err = stack.enter_context(tempfile.TemporaryFile("w+"))
            line = command(
                url, body, connections=share, seconds=seconds, rate=rate * share / connections,
                core=core,
            )  # fmt: skip
            process = subprocess.Popen(line, stdout=out, stderr=err, text=True, env=HEY_ENV)
            started.append((process, out, err))
            if i < processes - 1:
                time.sleep(apart)
        stack.callback(_end, [process for process, _, _ in started])
        tally = Tally()
        for process, out, err in started:
            code = process.wait(timeout=seconds + TIMEOUT_S + 30)
            if code != 0:
                err.seek(0)
                raise LoadError(f"hey failed ({code}): {err.read().strip()[-500:]}")
            out.seek(0)
            tally.merge(parse_csv(out.read()))
    return tally


def _end(processes: list[subprocess.Popen[str]]) -> None:
    """Kill the hey processes still running (when another failed)."""
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()
