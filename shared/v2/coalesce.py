"""Concurrent requests' rows to one model, sent in as few predictor calls as its pace allows.

A call to a V2 predictor costs the same fixed work whatever it carries (gRPC
framing, thread hand-offs, a session run), and in Python that work is most of
a sync request's cost: a 1-row ModelInfer takes ~0.6 ms of CPU on each side
on the machines this playground is measured on, the model 7 µs. So an api
sends a request's rows at once while fewer than ``max_in_flight`` calls are
out; rows that arrive while the peer is busy wait for the next call, which
takes all of them (up to ``max_rows``). At low load nothing waits: every
request makes its own call. Under load the calls carry many requests' rows,
and the wait is time the request would have spent queued anyway.

Only models whose inputs and outputs all start with a free row dimension can
share a call (:func:`batchable`); each waiter keeps its own deadline; a call
that fails fails each of its requests with the same error, except a refused
input, which is retried one request per call so one bad request cannot fail
the others.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np
from prometheus_client import Histogram

from shared.kit.errors import DependencyTimeout, InvalidInput, PayloadTooLarge
from shared.kit.logs import request_id_var
from shared.kit.metrics import LATENCY_BUCKETS
from shared.model.metadata import ModelMetadata

REQUESTS_PER_CALL = Histogram(
    "mlsp_outbound_requests_per_call",
    "Requests whose rows one call to a peer carried (coalescing at work when > 1).",
    ["peer"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
ON_PEER = Histogram(
    "mlsp_outbound_request_duration_seconds",
    "Time each request spent on a peer: waiting for a call to leave, then the call "
    "(mlsp_outbound_duration_seconds counts a shared call once).",
    ["peer"],
    buckets=LATENCY_BUCKETS,
)
QUEUED = Histogram(
    "mlsp_outbound_queue_seconds",
    "Time a request waited for a call to a peer to leave (0 when it called at once).",
    ["peer"],
    buckets=LATENCY_BUCKETS,
)
# How many request ids a shared call names in its x-request-id (gRPC metadata stays small).
NAMED_IDS = 8

Outputs = dict[str, np.ndarray]
Call = Callable[[np.ndarray, list[str], float], Awaitable[Outputs]]


def batchable(metadata: ModelMetadata) -> bool:
    """True when every input and output of the model has a free first (row) dimension."""
    return all(spec.shape and spec.shape[0] is None for spec in metadata.inputs + metadata.outputs)


def shared_request_id(ids: list[str | None]) -> str | None:
    """The request id a call made for several requests carries: theirs, comma-joined
    (the first :data:`NAMED_IDS`, then ``+N`` for the rest)."""
    named = [i for i in ids if i]
    if len(named) <= 1:
        return named[0] if named else None
    shown = ",".join(named[:NAMED_IDS])
    return shown if len(named) <= NAMED_IDS else f"{shown},+{len(named) - NAMED_IDS}"


@dataclass(eq=False)
class _Waiting:
    rows: np.ndarray
    outputs: tuple[str, ...]
    deadline: float
    request_id: str | None
    entered: float = field(default_factory=time.perf_counter)
    left: float | None = None  # when its call left
    answer: asyncio.Future[Outputs] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Coalescer:
    """One peer's calls: at most ``max_in_flight`` at a time, each carrying the rows
    of every request that waited for it (up to ``max_rows``)."""

    def __init__(self, peer: str, call: Call, max_in_flight: int, max_rows: int) -> None:
        if max_in_flight < 1 or max_rows < 1:
            raise ValueError("max_in_flight and max_rows must be at least 1")
        self.peer = peer
        self.call = call
        self.max_in_flight = max_in_flight
        self.max_rows = max_rows
        self.in_flight = 0
        self.waiting: list[_Waiting] = []
        self._tasks: set[asyncio.Task[None]] = set()
        # The peer's metric children, looked up once (a lookup takes a lock, per request).
        self._requests_per_call = REQUESTS_PER_CALL.labels(peer)
        self._queued = QUEUED.labels(peer)
        self._on_peer = ON_PEER.labels(peer)

    async def infer(self, rows: np.ndarray, outputs: list[str], timeout_s: float) -> Outputs:
        """The model's ``outputs`` for ``rows``, from a call of their own or a shared one."""
        if self.in_flight < self.max_in_flight and not self.waiting:
            self.in_flight += 1
            self._requests_per_call.observe(1)
            entered = time.perf_counter()
            try:
                return await self.call(rows, outputs, timeout_s)
            finally:
                self.in_flight -= 1
                self._queued.observe(0)
                self._on_peer.observe(time.perf_counter() - entered)
                self._dispatch()
        waiting = _Waiting(rows, tuple(outputs), time.monotonic() + timeout_s, request_id_var.get())
        self.waiting.append(waiting)
        self._dispatch()
        try:
            # The answer is this request's own future, so giving up on it leaves the
            # shared call alone. A timer on that future costs ~7 µs less a request
            # than wait_for and shield, but measured slower under load (sync, 16
            # connections: 3.6k against 4.1k requests/s, same requests per call): the
            # extra hops let the loop poll between waking the waiters, so the peer's
            # next answer is read, and the next call sent, sooner.
            return await asyncio.wait_for(asyncio.shield(waiting.answer), timeout_s)
        except TimeoutError:
            raise DependencyTimeout.waited(self.peer, timeout_s) from None
        finally:
            if waiting in self.waiting:  # gave up before its call left: no work for it
                self.waiting.remove(waiting)
            if not waiting.answer.done():  # gave up: its call's answer has nobody to go to
                waiting.answer.cancel()
            ended = time.perf_counter()
            self._queued.observe((waiting.left or ended) - waiting.entered)
            self._on_peer.observe(ended - waiting.entered)

    async def wait_closed(self) -> None:
        """Wait for the calls in flight (at shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _dispatch(self) -> None:
        while self.waiting and self.in_flight < self.max_in_flight:
            group = self._take_group()
            self.in_flight += 1
            task = asyncio.get_running_loop().create_task(self._run(group))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _take_group(self) -> list[_Waiting]:
        """The first waiter and every later one asking the same outputs, within max_rows."""
        first = self.waiting[0]
        group, rows = [], 0
        for waiting in list(self.waiting):
            fits = not group or rows + len(waiting.rows) <= self.max_rows
            if waiting.outputs == first.outputs and fits:
                group.append(waiting)
                rows += len(waiting.rows)
                self.waiting.remove(waiting)
        return group

    async def _run(self, group: list[_Waiting]) -> None:
        try:
            self._requests_per_call.observe(len(group))
            left = time.perf_counter()
            for waiting in group:
                waiting.left = left
            request_id_var.set(shared_request_id([w.request_id for w in group]))
            rows = group[0].rows if len(group) == 1 else np.concatenate([w.rows for w in group])
            left_s = max(w.deadline for w in group) - time.monotonic()
            try:
                answer = await self.call(rows, list(group[0].outputs), max(left_s, 0.001))
            except (InvalidInput, PayloadTooLarge):
                if len(group) == 1:
                    raise
                await asyncio.gather(*(self._alone(w) for w in group))
                return
            offset = 0
            for waiting in group:
                end = offset + len(waiting.rows)
                _resolve(waiting, {name: value[offset:end] for name, value in answer.items()})
                offset = end
        except Exception as exc:  # every waiter of the call gets its failure
            for waiting in group:
                if not waiting.answer.done():
                    waiting.answer.set_exception(exc)
        finally:
            self.in_flight -= 1
            self._dispatch()

    async def _alone(self, waiting: _Waiting) -> None:
        """Retry one request of a refused shared call in a call of its own."""
        request_id_var.set(waiting.request_id)
        try:
            left_s = max(waiting.deadline - time.monotonic(), 0.001)
            _resolve(waiting, await self.call(waiting.rows, list(waiting.outputs), left_s))
        except Exception as exc:
            if not waiting.answer.done():
                waiting.answer.set_exception(exc)


def _resolve(waiting: _Waiting, outputs: Outputs) -> None:
    if not waiting.answer.done():
        waiting.answer.set_result(outputs)
