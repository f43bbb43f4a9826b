"""fan_out: members at once under one deadline; who answered, who was left out and why."""

import asyncio
import time

import pytest

from conftest import service_module
from shared.kit.errors import DependencyTimeout, DependencyUnavailable

fanout = service_module("parallel", "api", "fanout")
MemberResult, fan_out = fanout.MemberResult, fanout.fan_out


def answers(value: str, after_s: float = 0.0):
    async def call(deadline_s: float) -> str:
        assert deadline_s > 0
        await asyncio.sleep(after_s)
        return value

    return call


def fails(error: Exception):
    async def call(_: float) -> str:
        raise error

    return call


async def test_everyone_answers_in_member_order() -> None:
    result = await fan_out({"a": answers("A", 0.02), "b": answers("B"), "c": answers("C")}, 1.0)
    assert [r.member for r in result.results] == ["a", "b", "c"]
    assert result.answered == {"a": "A", "b": "B", "c": "C"}
    assert result.left_out == []
    assert result.results[0].ms >= 20
    result.require_quorum(3)


async def test_the_calls_run_at_once_and_the_fan_out_ends_when_all_answered() -> None:
    """Each member answers only once all four have started: calls made one after another
    would never get there, and be left out at the deadline. Once all have answered the
    fan-out returns, long before its 60 s deadline (5 s: a hang detector, not a speed
    figure)."""
    started: set[str] = set()
    everyone_started = asyncio.Event()

    def member(name: str):
        async def call(_: float) -> str:
            started.add(name)
            if len(started) == 4:
                everyone_started.set()
            await everyone_started.wait()
            return name

        return call

    calls = {name: member(name) for name in "abcd"}
    result = await asyncio.wait_for(fan_out(calls, 60.0), timeout=5)
    assert result.answered == {name: name for name in "abcd"}


async def test_a_member_past_the_deadline_is_cancelled_and_left_out() -> None:
    cancelled = asyncio.Event()

    async def hangs(_: float) -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "late"

    started = time.perf_counter()
    result = await fan_out({"fast": answers("F"), "slow": hangs}, 0.1)
    assert time.perf_counter() - started < 1
    assert result.answered == {"fast": "F"}
    (late,) = result.left_out
    assert late.member == "slow"
    assert isinstance(late.error, DependencyTimeout)
    assert late.left_out_body() == {
        "member": "slow",
        "code": "dependency_timeout",
        "message": "slow did not answer within 0.1 s",
    }
    await asyncio.wait_for(cancelled.wait(), 1)


async def test_failures_are_left_out_with_their_error() -> None:
    def broken(_: float) -> str:
        raise RuntimeError("bug")

    async def bug(deadline_s: float) -> str:
        return broken(deadline_s)

    result = await fan_out(
        {
            "up": answers("U"),
            "down": fails(DependencyUnavailable("down is unavailable")),
            "bug": bug,
        },
        1.0,
    )
    assert result.answered == {"up": "U"}
    assert [(r.member, r.error.code) for r in result.left_out if r.error] == [
        ("down", "dependency_unavailable"),
        ("bug", "dependency_unavailable"),
    ]
    assert result.left_out[1].error.message == "bug failed: internal error"


async def test_quorum_missed_by_timeouts_only_is_504() -> None:
    result = await fan_out({"a": answers("A"), "b": answers("B", 5), "c": answers("C", 5)}, 0.05)
    with pytest.raises(DependencyTimeout) as caught:
        result.require_quorum(2)
    assert caught.value.message == (
        "only 1 of 3 members answered, quorum is 2; "
        "left out: b (dependency_timeout), c (dependency_timeout)"
    )
    result.require_quorum(1)


async def test_quorum_missed_with_a_member_down_is_503() -> None:
    result = await fan_out(
        {"a": fails(DependencyUnavailable("a is down")), "b": answers("B", 5)}, 0.05
    )
    with pytest.raises(DependencyUnavailable, match=r"only 0 of 2 members answered, quorum is 1"):
        result.require_quorum(1)


async def test_on_result_sees_each_result_as_it_arrives() -> None:
    seen: list[tuple[str, bool]] = []
    slow_may_answer = asyncio.Event()

    async def slow(_: float) -> str:
        await slow_may_answer.wait()
        return "S"

    async def record(result: MemberResult[str]) -> None:
        seen.append((result.member, result.ok))
        slow_may_answer.set()  # the slow one answers only after the fast one was seen

    await fan_out(
        {"slow": slow, "fast": answers("F"), "late": answers("L", 5)}, 0.6, on_result=record
    )
    assert seen == [("fast", True), ("slow", True), ("late", False)]
