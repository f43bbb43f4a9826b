"""TurnBatcher: the requests of one event-loop turn share a model run, and each gets its rows."""

import asyncio

import numpy as np
import pytest

from shared.serving.turn_batch import TurnBatcher


class Model:
    """Doubles its rows; records each run; refuses any run holding a negative row."""

    def __init__(self) -> None:
        self.runs: list[np.ndarray] = []

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        self.runs.append(rows)
        if (rows < 0).any():
            raise ValueError("negative rows")
        return rows * 2


def rows_of(value: float, n: int = 1) -> np.ndarray:
    return np.full((n, 2), value, dtype=np.float32)


async def in_one_turn(batcher: TurnBatcher, *requests: np.ndarray) -> list[object]:
    """Call the batcher for every request in the same turn (as the requests ready when the
    loop polled its sockets are), and collect each request's answer or error."""
    return await asyncio.gather(*(batcher(rows) for rows in requests), return_exceptions=True)


async def quiet_turns() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def test_a_request_alone_runs_at_once() -> None:
    model = Model()
    batcher = TurnBatcher(model)
    for value in (1, 2, 3):
        call = batcher(rows_of(value))
        with pytest.raises(StopIteration) as finished:  # no suspension: answered in one step
            call.send(None)
        assert finished.value.value.tolist() == (rows_of(value) * 2).tolist()
        await quiet_turns()
    assert [len(run) for run in model.runs] == [1, 1, 1]


async def test_the_requests_of_a_turn_share_one_run_and_get_their_own_rows() -> None:
    model = Model()
    batcher = TurnBatcher(model)
    requests = [rows_of(i, n=i) for i in range(1, 7)]
    answers = await in_one_turn(batcher, *requests)
    for rows, answer in zip(requests, answers, strict=True):
        assert answer.tolist() == (rows * 2).tolist()
    # The first ran at once (the turn before was quiet); the other five together.
    assert [len(run) for run in model.runs] == [1, 2 + 3 + 4 + 5 + 6]


async def test_after_a_busy_turn_the_first_request_joins_the_run_too() -> None:
    model = Model()
    batcher = TurnBatcher(model)
    await in_one_turn(batcher, rows_of(1), rows_of(2))
    model.runs.clear()
    await in_one_turn(batcher, rows_of(3), rows_of(4), rows_of(5))
    assert [len(run) for run in model.runs] == [3]
    await quiet_turns()
    model.runs.clear()
    await in_one_turn(batcher, rows_of(6))  # the load is gone: at once again
    await in_one_turn(batcher, rows_of(7))
    assert [len(run) for run in model.runs] == [1, 1]


async def test_a_run_carries_at_most_max_rows_and_a_larger_request_runs_alone() -> None:
    model = Model()
    batcher = TurnBatcher(model, max_rows=4)
    await in_one_turn(batcher, rows_of(1), rows_of(2, n=2), rows_of(3, n=2), rows_of(4, n=9))
    assert [len(run) for run in model.runs] == [1, 4, 9]


async def test_a_failing_request_fails_alone() -> None:
    model = Model()
    batcher = TurnBatcher(model)
    answers = await in_one_turn(batcher, rows_of(1), rows_of(2), rows_of(-1), rows_of(3))
    assert isinstance(answers[2], ValueError)
    assert [a.tolist() for i, a in enumerate(answers) if i != 2] == [
        (rows_of(v) * 2).tolist() for v in (1, 2, 3)
    ]


async def test_rows_that_cannot_be_joined_run_alone() -> None:
    model = Model()
    batcher = TurnBatcher(model)
    wide = np.full((1, 3), 5, dtype=np.float32)
    answers = await in_one_turn(batcher, rows_of(1), rows_of(2), wide)
    assert answers[1].tolist() == (rows_of(2) * 2).tolist()
    assert answers[2].tolist() == (wide * 2).tolist()


async def test_a_request_that_goes_away_leaves_the_others_their_answers() -> None:
    model = Model()
    batcher = TurnBatcher(model)
    first = asyncio.ensure_future(batcher(rows_of(1)))
    gone = asyncio.ensure_future(batcher(rows_of(2)))
    last = asyncio.ensure_future(batcher(rows_of(3)))
    await asyncio.sleep(0)  # all three are waiting for the end of the turn, or done
    gone.cancel()
    assert (await first).tolist() == (rows_of(1) * 2).tolist()
    assert (await last).tolist() == (rows_of(3) * 2).tolist()
    with pytest.raises(asyncio.CancelledError):
        await gone
