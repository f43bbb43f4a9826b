"""Fan one piece of work out to several peers at once, under one deadline.

    result = await fan_out({"a": call_a, "b": call_b, "c": call_c}, deadline_s=0.5)
    result.require_quorum(2)      # 503/504 naming who was left out, unless 2 answered
    result.answered               # {"a": value, "c": value}
    result.left_out               # [MemberResult("b", error=DependencyTimeout(...))]

Each call gets the deadline (so it can pass it on, e.g. as a gRPC deadline)
and runs concurrently with the others; the fan-out ends when all have
answered or failed, or when the deadline passes, whichever comes first:
its latency tracks the slowest member, not the sum. Members still running at
the deadline are cancelled and left out with a timeout. ``on_result`` sees
every member's result as it arrives (an async job stores them there).
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from prometheus_client import Counter

from shared.kit.errors import DependencyTimeout, DependencyUnavailable, ServiceError

log = logging.getLogger("fanout")

T = TypeVar("T")
#: A member's call: takes the seconds it may use, returns the member's answer.
MemberCall = Callable[[float], Awaitable[T]]

FANOUT_RESULTS = Counter(
    "mlsp_fanout_member_results",
    "Members' results in fan-outs, by member and outcome (ok or the error code).",
    ["member", "outcome"],
)


@dataclass(frozen=True)
class MemberResult(Generic[T]):
    """One member's part of a fan-out: its answer, or the error that left it out."""

    member: str
    ms: float
    value: T | None = None
    error: ServiceError | None = None

    @property
    def ok(self) -> bool:
        """The member answered."""
        return self.error is None

    def left_out_body(self) -> dict[str, Any]:
        """``{"member", "code", "message"}``: why the member is not in the answer."""
        assert self.error is not None, "only left-out members have a reason"
        return {"member": self.member, "code": self.error.code, "message": self.error.message}


@dataclass(frozen=True)
class FanOutResult(Generic[T]):
    """Every member's result, in the order the members were given."""

    results: list[MemberResult[T]]
    deadline_s: float

    @property
    def answered(self) -> dict[str, T]:
        """The answers of the members that answered, by member."""
        return {r.member: r.value for r in self.results if r.ok}  # type: ignore[misc]

    @property
    def left_out(self) -> list[MemberResult[T]]:
        """The members that failed or missed the deadline."""
        return [r for r in self.results if not r.ok]

    def require_quorum(self, quorum: int) -> None:
        """Raise unless at least ``quorum`` members answered.

        504 when every left-out member timed out, else 503 with Retry-After; the
        message names each left-out member and why.
        """
        answered = len(self.results) - len(self.left_out)
        if answered >= quorum:
            return
        reasons = ", ".join(f"{r.member} ({r.error.code})" for r in self.left_out if r.error)
        message = (
            f"only {answered} of {len(self.results)} members answered, "
            f"quorum is {quorum}; left out: {reasons}"
        )
        if all(isinstance(r.error, DependencyTimeout) for r in self.left_out):
            raise DependencyTimeout(message)
        raise DependencyUnavailable(message)


async def _run(member: str, call: MemberCall[T], deadline_s: float) -> MemberResult[T]:
    started = time.perf_counter()
    try:
        value = await call(deadline_s)
    except ServiceError as exc:
        return MemberResult(member, _ms_since(started), error=exc)
    except Exception:  # a bug in one member's call must not sink the others
        log.exception("fan-out member %s failed", member)
        error = DependencyUnavailable(f"{member} failed: internal error")
        return MemberResult(member, _ms_since(started), error=error)
    return MemberResult(member, _ms_since(started), value=value)


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


async def fan_out(
    calls: Mapping[str, MemberCall[T]],
    deadline_s: float,
    on_result: Callable[[MemberResult[T]], Awaitable[None]] | None = None,
) -> FanOutResult[T]:
    """Run every member's call at once; collect what arrives before ``deadline_s``."""
    started = time.perf_counter()
    tasks = {
        asyncio.create_task(_run(member, call, deadline_s), name=f"fan-out {member}"): member
        for member, call in calls.items()
    }
    results: dict[str, MemberResult[T]] = {}
    pending = set(tasks)
    try:
        while pending:
            remaining = deadline_s - (time.perf_counter() - started)
            if remaining <= 0:
                break
            done, pending = await asyncio.wait(
                pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                await _collect(task.result(), results, on_result)
    finally:
        for task in pending:
            task.cancel()
    for task in pending:
        member = tasks[task]
        error = DependencyTimeout.waited(member, deadline_s)
        await _collect(MemberResult(member, _ms_since(started), error=error), results, on_result)
    return FanOutResult([results[member] for member in calls], deadline_s)


async def _collect(
    result: MemberResult[T],
    results: dict[str, MemberResult[T]],
    on_result: Callable[[MemberResult[T]], Awaitable[None]] | None,
) -> None:
    results[result.member] = result
    FANOUT_RESULTS.labels(result.member, "ok" if result.ok else result.error.code).inc()  # type: ignore[union-attr]
    if on_result is not None:
        await on_result(result)
