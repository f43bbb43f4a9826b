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
(``ok``, ``failed``, ``timeout``) or is not made (``dropped``);
``mlsp_mirror_calls_in_flight{mirror}`` is the bound's count.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from prometheus_client import Counter, Gauge

from shared.kit.errors import DependencyTimeout

log = logging.getLogger("mirror")

T = TypeVar("T")

MIRROR_CALLS = Counter(
    "mlsp_mirror_calls",
    "Mirrored calls by how they ended: ok, failed, timeout, or dropped (over the bound).",
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
        self._gauge = MIRROR_IN_FLIGHT.labels(name)

    @property
    def in_flight(self) -> int:
        """Calls running now."""
        return len(self._tasks)

    def submit(
        self, call: Callable[[], Awaitable[T]], on_answer: Callable[[T, float], None]
    ) -> bool:
        """Start ``call()`` in the background; ``on_answer(answer, seconds)`` gets its answer.

        Returns False, having made no call, when ``max_in_flight`` calls are running.
        Must be called from the event loop's thread (a request handler, say).
        """
        if len(self._tasks) >= self.max_in_flight:
            self._outcomes["dropped"].inc()
            return False
        task = asyncio.get_running_loop().create_task(self._run(call, on_answer))
        self._tasks.add(task)
        self._gauge.inc()
        task.add_done_callback(self._forget)
        return True

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._gauge.dec()

    async def _run(
        self, call: Callable[[], Awaitable[T]], on_answer: Callable[[T, float], None]
    ) -> None:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout_s):
                answer = await call()
            on_answer(answer, time.perf_counter() - started)
        except (TimeoutError, DependencyTimeout):  # its deadline, or the peer client's
            self._ended("timeout", f"no answer within {self.timeout_s:g} s")
        except Exception as exc:  # a mirror's error must never reach the caller
            self._ended("failed", f"{type(exc).__name__}: {exc}")
        else:
            self._ended("ok", "")

    def _ended(self, outcome: str, reason: str) -> None:
        self._outcomes[outcome].inc()
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
