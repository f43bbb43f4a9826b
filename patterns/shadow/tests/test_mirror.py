"""mirror: bounded fire-and-forget calls whose errors are counted, never raised."""

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from prometheus_client import REGISTRY

from conftest import service_module
from shared.kit.errors import DependencyTimeout

Mirror = service_module("shadow", "api", "mirror").Mirror


def calls(mirror: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "mlsp_mirror_calls_total", {"mirror": mirror, "outcome": outcome}
    )
    return value or 0.0


def test_a_call_runs_in_the_background_and_its_answer_is_handed_on() -> None:
    answers: list[tuple[str, float]] = []

    async def scenario() -> bool:
        mirror = Mirror("t-answer", max_in_flight=2, timeout_s=1.0)
        gate = asyncio.Event()

        async def call() -> str:
            await gate.wait()
            return "label"

        accepted = mirror.submit(call, lambda answer, s: answers.append((answer, s)))
        assert answers == []  # submit did not wait for the call
        assert mirror.in_flight == 1
        gate.set()
        await mirror.aclose(grace_s=1.0)
        return accepted

    assert asyncio.run(scenario())
    assert [answer for answer, _ in answers] == ["label"]
    assert answers[0][1] >= 0
    assert calls("t-answer", "ok") == 1


def test_past_the_bound_a_call_is_dropped_and_counted() -> None:
    started: list[int] = []

    async def scenario() -> list[bool]:
        mirror = Mirror("t-bound", max_in_flight=2, timeout_s=5.0)
        gate = asyncio.Event()

        def call_number(i: int) -> Callable[[], Awaitable[int]]:
            async def call() -> int:
                started.append(i)
                await gate.wait()
                return i

            return call

        accepted = [mirror.submit(call_number(i), lambda *_: None) for i in range(5)]
        await asyncio.sleep(0)
        assert mirror.in_flight == 2
        gate.set()
        await mirror.aclose(grace_s=1.0)
        # Room again once the calls have ended.
        assert mirror.submit(call_number(9), lambda *_: None)
        await mirror.aclose(grace_s=1.0)
        return accepted

    assert asyncio.run(scenario()) == [True, True, False, False, False]
    assert sorted(started) == [0, 1, 9]
    assert calls("t-bound", "dropped") == 3
    assert calls("t-bound", "ok") == 3


def test_errors_and_timeouts_are_counted_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    async def fails() -> None:
        raise ConnectionError("candidate down")

    async def hangs() -> None:
        await asyncio.sleep(10)

    async def peer_deadline() -> None:  # the peer client's own deadline, as a 504 error
        raise DependencyTimeout.waited("candidate", 0.05)

    async def scenario() -> None:
        mirror = Mirror("t-errors", max_in_flight=8, timeout_s=0.05)
        for call in (fails, fails, hangs, peer_deadline):
            assert mirror.submit(call, lambda *_: None)
        await mirror.aclose(grace_s=1.0)
        assert mirror.in_flight == 0

    asyncio.run(scenario())
    assert calls("t-errors", "failed") == 2
    assert calls("t-errors", "timeout") == 2
    warnings = [r.getMessage() for r in caplog.records if r.name == "mirror"]
    assert warnings == [
        "mirror t-errors failing (counted, not raised): ConnectionError: candidate down"
    ]


def test_an_error_in_the_answer_handler_is_counted_as_failed() -> None:
    async def ok() -> int:
        return 1

    def broken(*_: object) -> None:
        raise ValueError("bad answer")

    async def scenario() -> None:
        mirror = Mirror("t-handler", max_in_flight=1, timeout_s=1.0)
        mirror.submit(ok, broken)
        await mirror.aclose(grace_s=1.0)

    asyncio.run(scenario())
    assert calls("t-handler", "failed") == 1


def test_closing_cancels_the_calls_that_outlive_the_grace() -> None:
    async def scenario() -> asyncio.Event:
        mirror = Mirror("t-close", max_in_flight=1, timeout_s=60)
        cancelled = asyncio.Event()

        async def slow() -> None:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        mirror.submit(slow, lambda *_: None)
        await asyncio.sleep(0)
        await mirror.aclose(grace_s=0.01)
        assert mirror.in_flight == 0
        return cancelled

    assert asyncio.run(scenario()).is_set()


def test_the_bound_must_allow_one_call() -> None:
    with pytest.raises(ValueError, match="max_in_flight must be at least 1"):
        Mirror("t-zero", max_in_flight=0, timeout_s=1.0)
