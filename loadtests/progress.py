"""One progress line per interval while Locust runs headless.

``--only-summary`` keeps Locust's multi-line tables out of the way; this
prints instead, every ``PROGRESS_SECONDS`` (default 5)::

    [   10 s]  16 users  2103.4 req/s  p50 7 ms  p95 13 ms  failures 0 (0.00%)

p50/p95 are over Locust's sliding window (the last ~10 s), req/s is current.
"""

from __future__ import annotations

import os
import sys
import time

import gevent
from locust import events
from locust.env import Environment
from locust.event import Events
from locust.runners import WorkerRunner

__all__ = ["format_line", "install"]


def format_line(environment: Environment, elapsed_s: float) -> str:
    """The progress line for the current stats of ``environment``."""
    total = environment.runner.stats.total
    p50 = total.get_current_response_time_percentile(0.5) or 0
    p95 = total.get_current_response_time_percentile(0.95) or 0
    return (
        f"[{elapsed_s:5.0f} s]  {environment.runner.user_count:3d} users  "
        f"{total.current_rps:7.1f} req/s  p50 {p50:.0f} ms  p95 {p95:.0f} ms  "
        f"failures {total.num_failures} ({100 * total.fail_ratio:.2f}%)"
    )


def install(hooks: Events = events) -> None:
    """Print a progress line every ``PROGRESS_SECONDS`` from test start to stop."""
    interval = float(os.environ.get("PROGRESS_SECONDS", "5"))
    if interval <= 0:
        return
    running: dict[str, gevent.Greenlet] = {}

    @hooks.test_start.add_listener
    def _start(environment: Environment, **_: object) -> None:
        if isinstance(environment.runner, WorkerRunner):
            return
        started = time.monotonic()

        def report() -> None:
            while True:
                gevent.sleep(interval)
                print(format_line(environment, time.monotonic() - started), file=sys.stderr)

        running["greenlet"] = gevent.spawn(report)

    @hooks.test_stop.add_listener
    def _stop(**_: object) -> None:
        greenlet = running.pop("greenlet", None)
        if greenlet is not None:
            greenlet.kill(block=False)
