"""mirror: bounded fire-and-forget calls whose errors are counted, never raised."""

import asyncio
from collections.abc import Awaitable, Callable

import numpy as np
import pytest
from prometheus_client import REGISTRY

from conftest import service_module
from shared.kit.errors import DependencyTimeout

mirror_module = service_module("shadow", "api", "mirror")
Mirror, RowWindow = mirror_module.Mirror, mirror_module.RowWindow


def calls(mirror: str, outcome: str, metric: str = "mlsp_mirror_calls_total") -> float:
    value = REGISTRY.get_sample_value(metric, {"mirror": mirror, "outcome": outcome})
    return value or 0.0


def rows_of(mirror: str, outcome: str) -> float:
    return calls(mirror, outcome, "mlsp_mirror_rows_total")


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
    assert rows_of("t-bound", "dropped") == 3  # one row a call by default


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


class Recorder:
    """A peer that answers each row's value doubled, and the answers handed on."""

    def __init__(self) -> None:
        self.calls: list[list[float]] = []
        self.answers: list[tuple[list[str], list[float]]] = []

    async def call(self, rows: np.ndarray) -> np.ndarray:
        self.calls.append(rows[:, 0].tolist())
        return rows[:, 0] * 2

    def on_answer(self, keys: np.ndarray, answer: np.ndarray, seconds: float) -> None:
        assert seconds >= 0
        self.answers.append((keys.tolist(), answer.tolist()))


def window_scenario(
    name: str, window_s: float, max_rows: int, sends: list[int], wait_s: float | None = None
) -> Recorder:
    """Add one request per entry of ``sends`` (that many rows, numbered on) at once, then
    wait ``wait_s`` (past the window by default); the peer's calls and the answers."""
    recorder = Recorder()

    async def scenario() -> None:
        mirror = Mirror(name, max_in_flight=8, timeout_s=1.0)
        window = RowWindow(mirror, window_s, max_rows, recorder.call, recorder.on_answer)
        first = 0
        for count in sends:
            numbers = np.arange(first, first + count, dtype=np.float32)
            window.add(numbers.reshape(-1, 1), np.array([f"k{n:.0f}" for n in numbers]))
            first += count
        await asyncio.sleep(window_s + 0.05 if wait_s is None else wait_s)
        await mirror.aclose(grace_s=1.0)

    asyncio.run(scenario())
    return recorder


def test_the_rows_of_one_window_go_in_one_call_and_each_key_meets_its_answer() -> None:
    recorder = window_scenario("t-window", 0.02, 256, [1, 2, 1])
    assert recorder.calls == [[0, 1, 2, 3]]
    assert recorder.answers == [(["k0", "k1", "k2", "k3"], [0, 2, 4, 6])]
    assert calls("t-window", "ok") == 1
    assert rows_of("t-window", "ok") == 4


def test_a_window_of_zero_sends_each_request_as_its_own_call() -> None:
    recorder = window_scenario("t-window-0", 0.0, 256, [1, 2])
    assert recorder.calls == [[0], [1, 2]]
    assert calls("t-window-0", "ok") == 2


def test_a_full_window_is_sent_before_it_closes() -> None:
    recorder = window_scenario("t-window-full", 30.0, 3, [2, 2, 1], wait_s=0.05)
    # 2 + 2 rows reach max_rows: sent at once; the last row waits for its window (30 s),
    # longer than the scenario, and is flushed at shutdown in the api (flush()).
    assert recorder.calls == [[0, 1, 2, 3]]


def test_flush_sends_what_waits_and_nothing_when_nothing_does() -> None:
    recorder = Recorder()

    async def scenario() -> None:
        mirror = Mirror("t-flush", max_in_flight=8, timeout_s=1.0)
        window = RowWindow(mirror, 30.0, 256, recorder.call, recorder.on_answer)
        window.flush()
        window.add(np.ones((2, 1), np.float32), np.array(["a", "b"]))
        window.flush()
        window.flush()
        await mirror.aclose(grace_s=1.0)

    asyncio.run(scenario())
    assert recorder.answers == [(["a", "b"], [2, 2])]


def test_a_window_needs_a_length_and_room_for_a_row() -> None:
    mirror = Mirror("t-window-bad", max_in_flight=1, timeout_s=1.0)
    for window_s, max_rows in ((-1.0, 8), (0.01, 0)):
        with pytest.raises(ValueError, match="window_s must be 0 or more"):
            RowWindow(mirror, window_s, max_rows, Recorder().call, Recorder().on_answer)
