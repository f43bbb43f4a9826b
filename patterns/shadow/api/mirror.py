"""Fire-and-forget calls that never hold up, nor fail, the request that made them.

    mirror = Mirror("candidate", max_in_flight=64, timeout_s=1.0)
    mirror.submit(lambda: candidate.infer(rows, ["probabilities"]), on_answer)
    ...
    await mirror.aclose(grace_s=2.0)   # in the lifespan, at shutdown

:meth:`Mirror.submit` starts the call as a task of its own and returns at once.
At most ``max_in_flight`` calls run at a time: past that, a new call is not made
and is counted ``dropped``, so a slow or stopped peer costs a bounded number of
tasks, not a growing pile. Each call has its own deadline. Its errors are counted,
never raised, and logged once per change from answering to failing.

``mlsp_mirror_calls_total{mirror,outcome}`` counts each call once it ends
(``ok``, ``failed``, ``timeout``) or is not made (``dropped``), and
``mlsp_mirror_rows_total{mirror,outcome}`` the rows those calls carried;
``mlsp_mirror_calls_in_flight{mirror}`` is the bound's count.

:class:`RowWindow` sits in front of a mirror: the rows mirrored within a short window
go out as one call, so that mirroring costs the api (and the peer) a call per window
instead of a call per request.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import numpy as np
from prometheus_client import Counter, Gauge

from shared.kit.errors import DependencyTimeout

log = logging.getLogger("mirror")

T = TypeVar("T")

MIRROR_CALLS = Counter(
    "mlsp_mirror_calls",
    "Mirrored calls by how they ended: ok, failed, timeout, or dropped (over the bound).",
    ["mirror", "outcome"],
)
MIRROR_ROWS = Counter(
    "mlsp_mirror_rows",
    "Rows of the mirrored calls, by how their call ended (as mlsp_mirror_calls_total).",
    ["mirror", "outcome"],
)
MIRROR_IN_FLIGHT = Gauge(
    "mlsp_mirror_calls_in_flight",
    "Mirrored calls running now.",
    ["mirror"],
    multiprocess_mode="livesum",
)

OUTCOMES = ("ok", "failed", "timeout", "dropped")


class Mirror:
    """Runs calls in the background: at most ``max_in_flight`` at once, each in ``timeout_s``."""

    def __init__(self, name: str, max_in_flight: int, timeout_s: float) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, not {max_in_flight}")
        self.name = name
        self.max_in_flight = max_in_flight
        self.timeout_s = timeout_s
        self._tasks: set[asyncio.Task[None]] = set()
        self._failing = False
        self._outcomes = {outcome: MIRROR_CALLS.labels(name, outcome) for outcome in OUTCOMES}
        self._rows = {outcome: MIRROR_ROWS.labels(name, outcome) for outcome in OUTCOMES}
        self._gauge = MIRROR_IN_FLIGHT.labels(name)

    @property
    def in_flight(self) -> int:
        """Calls running now."""
        return len(self._tasks)

    def submit(
        self,
        call: Callable[[], Awaitable[T]],
        on_answer: Callable[[T, float], None],
        rows: int = 1,
    ) -> bool:
        """Start ``call()`` in the background; ``on_answer(answer, seconds)`` gets its answer.

        Returns False, having made no call, when ``max_in_flight`` calls are running.
        ``rows`` is what the call carries, for ``mlsp_mirror_rows_total``.
        Must be called from the event loop's thread (a request handler, say).
        """
        if len(self._tasks) >= self.max_in_flight:
            self._count("dropped", rows)
            return False
        task = asyncio.get_running_loop().create_task(self._run(call, on_answer, rows))
        self._tasks.add(task)
        self._gauge.inc()
        task.add_done_callback(self._forget)
        return True

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._gauge.dec()

    async def _run(
        self, call: Callable[[], Awaitable[T]], on_answer: Callable[[T, float], None], rows: int
    ) -> None:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout_s):
                answer = await call()
            on_answer(answer, time.perf_counter() - started)
        except (TimeoutError, DependencyTimeout):  # its deadline, or the peer client's
            self._ended("timeout", rows, f"no answer within {self.timeout_s:g} s")
        except Exception as exc:  # a mirror's error must never reach the caller
            self._ended("failed", rows, f"{type(exc).__name__}: {exc}")
        else:
            self._ended("ok", rows, "")

    def _count(self, outcome: str, rows: int) -> None:
        self._outcomes[outcome].inc()
        self._rows[outcome].inc(rows)

    def _ended(self, outcome: str, rows: int, reason: str) -> None:
        self._count(outcome, rows)
        failing = outcome != "ok"
        if failing and not self._failing:
            log.warning("mirror %s failing (counted, not raised): %s", self.name, reason)
        elif self._failing and not failing:
            log.info("mirror %s answering again", self.name)
        self._failing = failing

    async def aclose(self, grace_s: float) -> None:
        """Let the calls running finish for up to ``grace_s`` seconds, then cancel the rest."""
        if not self._tasks:
            return
        _, late = await asyncio.wait(set(self._tasks), timeout=grace_s)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)


class RowWindow:
    """Gathers the rows mirrored within ``window_s`` and hands them to a mirror as one call.

        window = RowWindow(mirror, window_s=0.01, max_rows=256,
                           call=lambda rows: candidate.infer(rows, ["probabilities"]),
                           on_answer=comparison.answered)
        window.add(rows, primary_best)   # in the handler: returns at once
        window.flush()                   # at shutdown, before mirror.aclose()

    The first rows added open a window; when it closes (or once ``max_rows`` rows are
    waiting) the rows go out in one call, and ``on_answer(keys, answer, seconds)`` gets
    the keys added with them (one per row, in the same order) beside the call's answer.
    A ``window_s`` of 0 sends each :meth:`add` as its own call.
    """

    def __init__(
        self,
        mirror: Mirror,
        window_s: float,
        max_rows: int,
        call: Callable[[np.ndarray], Awaitable[T]],
        on_answer: Callable[[np.ndarray, T, float], None],
    ) -> None:
        if window_s < 0 or max_rows < 1:
            raise ValueError("window_s must be 0 or more and max_rows at least 1")
        self.mirror = mirror
        self.window_s = window_s
        self.max_rows = max_rows
        self._call = call
        self._on_answer = on_answer
        self._rows: list[np.ndarray] = []
        self._keys: list[np.ndarray] = []
        self._waiting = 0
        self._closing: asyncio.TimerHandle | None = None

    def add(self, rows: np.ndarray, keys: np.ndarray) -> None:
        """Mirror ``rows`` (``keys``: one per row, handed back with the answer) soon."""
        self._rows.append(rows)
        self._keys.append(keys)
        self._waiting += len(rows)
        if self._waiting >= self.max_rows or self.window_s == 0:
            self.flush()
        elif self._closing is None:
            self._closing = asyncio.get_running_loop().call_later(self.window_s, self.flush)

    def flush(self) -> None:
        """Send the rows waiting now as one call (nothing when none wait)."""
        if self._closing is not None:
            self._closing.cancel()
            self._closing = None
        if not self._rows:
            return
        rows, keys = self._rows, self._keys
        self._rows, self._keys, self._waiting = [], [], 0
        batch = rows[0] if len(rows) == 1 else np.concatenate(rows)
        batch_keys = keys[0] if len(keys) == 1 else np.concatenate(keys)
        self.mirror.submit(
            lambda: self._call(batch),
            lambda answer, seconds: self._on_answer(batch_keys, answer, seconds),
            rows=len(batch),
        )
