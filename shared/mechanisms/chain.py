"""Calls made one after another under one deadline: the stages of a serial chain.

    chain = Chain(deadline_s=1.0)
    gate = await chain.call("gate", lambda left_s: gate_peer.infer(rows, ["scores"], left_s))
    ...
    chain.timings   # [{"stage": "gate", "ms": 1.2, ...}, ...] for the answer

The deadline covers the whole chain: each stage gets what the stages before
it left, so a slow first stage leaves less for the next, and a request never
takes much longer than its deadline however many stages it passes. A stage
that misses it is a 504 naming the stage and the deadline; a stage that is
down keeps its own error (503 naming it). Each stage's time goes to the
answer and to ``mlsp_stage_duration_seconds{stage="<name>_call"}``.
"""

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from shared.kit.errors import DependencyTimeout
from shared.kit.metrics import stage as metrics_stage

T = TypeVar("T")


class Chain:
    """The stages of one request, called in turn, sharing one deadline."""

    def __init__(self, deadline_s: float) -> None:
        self.deadline_s = deadline_s
        self.started = time.perf_counter()
        self.timings: list[dict[str, Any]] = []

    def remaining_s(self) -> float:
        """Seconds left of the deadline (negative once it has passed)."""
        return self.deadline_s - (time.perf_counter() - self.started)

    def elapsed_ms(self) -> float:
        """Milliseconds since the chain started."""
        return round((time.perf_counter() - self.started) * 1000, 3)

    async def call(self, stage: str, call: Callable[[float], Awaitable[T]], **details: Any) -> T:
        """Run stage ``stage``: ``call`` gets the seconds left and returns the stage's answer.

        ``details`` (e.g. ``model``, ``rows``) are kept with the stage's time in :attr:`timings`.
        """
        left_s = self.remaining_s()
        if left_s <= 0:
            raise DependencyTimeout(
                f"the request deadline ({self.deadline_s} s for the whole chain) "
                f"ran out before stage {stage}"
            )
        started = time.perf_counter()
        try:
            with metrics_stage(f"{stage}_call"):
                return await call(left_s)
        except DependencyTimeout:
            raise DependencyTimeout(
                f"stage {stage} did not answer within the request deadline "
                f"({self.deadline_s} s for the whole chain, {left_s:.3f} s left for this stage)"
            ) from None
        finally:
            ms = round((time.perf_counter() - started) * 1000, 3)
            self.timings.append({"stage": stage, **details, "ms": ms})
