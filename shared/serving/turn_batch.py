"""One model run for all the requests that reach it in the same event-loop turn.

Under concurrent load an event loop runs many requests' handlers one after
another in a single turn. Each would call onnxruntime for its own row and pay
the call's fixed cost: ~10 µs in a tight loop, but 35-40 µs inside a request on
the machines this playground is measured on (the interpreter's and
onnxruntime's caches are cold by then), more than parsing, checking and
answering the row together. With :class:`TurnBatcher` the requests of a turn
add their rows to one run at the end of the turn, and each gets its own slice
of the outputs.

There is no window or timer: nothing waits for requests that have not arrived.
A request that comes after a quiet turn runs at once, as it would without the
batcher (at one request at a time no request ever waits); if other requests
follow it in the same turn, the load is up, and they share one run at the end
of the turn, as does the first request of the next turn. A run that fails is
retried one request at a time, so one request cannot fail the others.

The ``inference`` stage and ``mlsp_model_requests_per_run`` count runs, so the
stage's sum over the requests served is each request's share of the model.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np
from prometheus_client import Histogram

from shared.kit.metrics import stage

REQUESTS_PER_RUN = Histogram(
    "mlsp_model_requests_per_run",
    "Requests whose rows one in-process model run carried (batching at work when > 1).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)

Run = Callable[[np.ndarray], np.ndarray]


class TurnBatcher:
    """Batch ``run`` (rows -> outputs with the same first dimension) per event-loop turn."""

    def __init__(self, run: Run, max_rows: int = 256) -> None:
        self._run = run
        self._max_rows = max_rows
        self._requests_this_turn = 0
        self._last_turn_was_busy = False
        self._waiting: list[tuple[np.ndarray, asyncio.Future[np.ndarray]]] = []

    async def __call__(self, rows: np.ndarray) -> np.ndarray:
        """The outputs for ``rows``, from the run at the end of the turn (or at once)."""
        loop = asyncio.get_running_loop()
        self._requests_this_turn += 1
        if self._requests_this_turn == 1:
            loop.call_soon(self._next_turn)
            if not self._last_turn_was_busy:  # most likely alone: nothing to wait for
                return self._timed_run(rows, requests=1)
        if not self._waiting:
            loop.call_soon(self._run_waiting)
        done: asyncio.Future[np.ndarray] = loop.create_future()
        self._waiting.append((rows, done))
        return await done

    def _next_turn(self) -> None:
        self._last_turn_was_busy = self._requests_this_turn > 1
        self._requests_this_turn = 0

    def _run_waiting(self) -> None:
        waiting, self._waiting = self._waiting, []
        start = 0
        while start < len(waiting):
            end, rows = start + 1, len(waiting[start][0])
            while end < len(waiting) and rows + len(waiting[end][0]) <= self._max_rows:
                rows += len(waiting[end][0])
                end += 1
            self._run_together(waiting[start:end])
            start = end

    def _timed_run(self, rows: np.ndarray, requests: int) -> np.ndarray:
        REQUESTS_PER_RUN.observe(requests)
        with stage("inference"):
            return self._run(rows)

    def _run_together(self, batch: list[tuple[np.ndarray, asyncio.Future[np.ndarray]]]) -> None:
        try:  # joining the rows can fail too (rows of other widths): each then runs alone
            rows = batch[0][0] if len(batch) == 1 else np.concatenate([r for r, _ in batch])
            outputs = self._timed_run(rows, requests=len(batch))
        except Exception as exc:  # handed to the requests that asked
            if len(batch) == 1:
                _settle(batch[0][1], exc)
            else:
                for one in batch:
                    self._run_together([one])
            return
        offset = 0
        for request_rows, done in batch:
            _settle(done, outputs[offset : offset + len(request_rows)])
            offset += len(request_rows)


def _settle(done: asyncio.Future[np.ndarray], outcome: np.ndarray | Exception) -> None:
    if done.done():  # the request went away (client gone, cancelled)
        return
    if isinstance(outcome, Exception):
        done.set_exception(outcome)
    else:
        done.set_result(outcome)
