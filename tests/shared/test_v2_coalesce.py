"""Coalescer: concurrent requests share predictor calls; each keeps its answer and deadline."""

import asyncio
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import REGISTRY

from conftest import PredictorProcess
from shared.kit.errors import DependencyTimeout, DependencyUnavailable, InvalidInput
from shared.kit.logs import request_id_var
from shared.model.metadata import load_metadata
from shared.v2.coalesce import Coalescer, batchable, shared_request_id
from shared.v2.peers import ModelPeer, PeerCallSettings, connected


class FakePeer:
    """A peer that answers ``rows * 10`` once released, and remembers every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[np.ndarray, list[str], float, str | None]] = []
        self.release = asyncio.Event()
        self.fail: Exception | None = None
        self.refuse_value: float | None = None  # rows holding it make the call InvalidInput

    async def __call__(
        self, rows: np.ndarray, outputs: list[str], timeout_s: float
    ) -> dict[str, np.ndarray]:
        self.calls.append((rows, outputs, timeout_s, request_id_var.get()))
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        if self.refuse_value is not None and (rows == self.refuse_value).any():
            raise InvalidInput("refused")
        return {name: rows * 10 for name in outputs}


def rows_of(value: float, n: int = 1) -> np.ndarray:
    return np.full((n, 4), value, dtype=np.float32)


async def started(*coros) -> list[asyncio.Task]:
    """Tasks for ``coros``, each run up to its first wait, in order."""
    tasks = []
    for coro in coros:
        tasks.append(asyncio.create_task(coro))
        await asyncio.sleep(0)
    return tasks


async def test_a_request_alone_makes_its_own_call_at_once() -> None:
    peer = FakePeer()
    peer.release.set()
    coalescer = Coalescer("predictor", peer, max_in_flight=1, max_rows=256)
    answer = await coalescer.infer(rows_of(1), ["p"], timeout_s=1)
    assert answer["p"].tolist() == (rows_of(1) * 10).tolist()
    assert len(peer.calls) == 1


async def test_requests_arriving_while_the_peer_is_busy_share_the_next_call() -> None:
    peer = FakePeer()
    coalescer = Coalescer("predictor", peer, max_in_flight=1, max_rows=256)
    tasks = await started(*(coalescer.infer(rows_of(i, n=i), ["p"], 1) for i in range(1, 6)))
    assert len(peer.calls) == 1  # the first went at once, four wait
    peer.release.set()
    answers = await asyncio.gather(*tasks)
    assert len(peer.calls) == 2
    assert len(peer.calls[1][0]) == 2 + 3 + 4 + 5  # one call, every waiter's rows
    for i, answer in enumerate(answers, start=1):
        assert answer["p"].tolist() == (rows_of(i, n=i) * 10).tolist()


async def test_a_shared_call_carries_at_most_max_rows_and_only_the_same_outputs() -> None:
    peer = FakePeer()
    coalescer = Coalescer("predictor", peer, max_in_flight=1, max_rows=4)
    tasks = await started(
        coalescer.infer(rows_of(1), ["p"], 1),
        coalescer.infer(rows_of(2, n=3), ["p"], 1),
        coalescer.infer(rows_of(3), ["other"], 1),
        coalescer.infer(rows_of(4, n=2), ["p"], 1),
        coalescer.infer(rows_of(5), ["p"], 1),
    )
    peer.release.set()
    answers = await asyncio.gather(*tasks)
    shared = [(call[0][:, 0].tolist(), call[1]) for call in peer.calls[1:]]
    assert shared == [
        ([2, 2, 2, 5], ["p"]),  # 4 rows: the 2 rows of 4 would not fit
        ([3], ["other"]),
        ([4, 4], ["p"]),
    ]
    assert [a[next(iter(a))][0, 0] for a in answers] == [10, 20, 30, 40, 50]


async def test_a_shared_call_names_its_requests_and_no_request_waits_at_low_load() -> None:
    peer = FakePeer()
    coalescer = Coalescer("predictor", peer, max_in_flight=2, max_rows=256)

    async def as_request(request_id: str, value: float):
        request_id_var.set(request_id)
        return await coalescer.infer(rows_of(value), ["p"], 1)

    tasks = await started(*(as_request(f"r{i}", i) for i in range(12)))
    assert [call[3] for call in peer.calls] == ["r0", "r1"]  # two in flight, each its own
    peer.release.set()
    await asyncio.gather(*tasks)
    assert peer.calls[2][3] == "r2,r3,r4,r5,r6,r7,r8,r9,+2"
    assert shared_request_id([None, "a", None]) == "a"
    assert shared_request_id([None]) is None


async def test_a_waiter_keeps_its_own_deadline_and_is_not_sent_once_it_gave_up() -> None:
    peer = FakePeer()
    coalescer = Coalescer("gate", peer, max_in_flight=1, max_rows=256)
    first, patient, hasty = await started(
        coalescer.infer(rows_of(1), ["p"], 5),
        coalescer.infer(rows_of(2), ["p"], 5),
        coalescer.infer(rows_of(3), ["p"], 0.05),
    )
    with pytest.raises(DependencyTimeout, match=r"^gate did not answer within 0\.05 s$"):
        await hasty
    peer.release.set()
    assert (await first)["p"][0, 0] == 10
    assert (await patient)["p"][0, 0] == 20
    assert [call[0][:, 0].tolist() for call in peer.calls] == [[1], [2]]  # 3 never sent
    assert peer.calls[1][2] == pytest.approx(5, abs=0.1)  # the call's deadline: its waiters'


async def test_a_refused_shared_call_is_retried_one_request_a_call() -> None:
    peer = FakePeer()
    peer.refuse_value = 2.0
    coalescer = Coalescer("predictor", peer, max_in_flight=1, max_rows=256)
    tasks = await started(*(coalescer.infer(rows_of(v), ["p"], 1) for v in (1, 2, 3, 4)))
    peer.release.set()
    first, bad, third, fourth = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(bad, InvalidInput)
    assert [a["p"][0, 0] for a in (first, third, fourth)] == [10, 30, 40]
    assert [call[0][:, 0].tolist() for call in peer.calls] == [[1], [2, 3, 4], [2], [3], [4]]


async def test_a_failed_shared_call_fails_each_of_its_requests() -> None:
    peer = FakePeer()
    peer.fail = DependencyUnavailable("predictor is unavailable; retry shortly")
    coalescer = Coalescer("predictor", peer, max_in_flight=1, max_rows=256)
    tasks = await started(*(coalescer.infer(rows_of(v), ["p"], 1) for v in (1, 2, 3)))
    peer.release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, DependencyUnavailable) for r in results)
    assert len(peer.calls) == 2
    await coalescer.wait_closed()
    assert coalescer.in_flight == 0
    assert not coalescer.waiting


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Coalescer("p", FakePeer(), max_in_flight=0, max_rows=1)


def test_only_models_with_a_free_row_dimension_are_batchable(model_repo: Path) -> None:
    metadata = load_metadata(model_repo, "iris")
    assert batchable(metadata)
    fixed = metadata.model_copy(deep=True)
    fixed.outputs[0].shape[0] = 1
    assert not batchable(fixed)


async def test_concurrent_requests_to_a_real_predictor_get_their_own_answers(
    model_repo: Path, predictor_server: PredictorProcess
) -> None:
    rng = np.random.default_rng(7)
    requests = [rng.uniform(0, 8, size=(n, 4)).astype(np.float32) for n in (1, 3, 1, 2) * 10]
    alone = ModelPeer.from_repository("alone", predictor_server.grpc_target, model_repo, "iris")
    shared = ModelPeer.from_repository("shared", predictor_server.grpc_target, model_repo, "iris")
    async with connected([alone], 2, PeerCallSettings(peer_max_calls_in_flight=0)):
        expected = [
            (await alone.infer(rows, ["probabilities"]))["probabilities"] for rows in requests
        ]
        assert alone.coalescer is None
    async with connected([shared], 2, PeerCallSettings(peer_max_calls_in_flight=1)):
        answers = await asyncio.gather(*(shared.infer(r, ["probabilities"]) for r in requests))
    for got, want in zip(answers, expected, strict=True):  # batched kernels round differently
        np.testing.assert_allclose(got["probabilities"], want, rtol=1e-5, atol=1e-7)
    calls = REGISTRY.get_sample_value("mlsp_outbound_requests_per_call_count", {"peer": "shared"})
    carried = REGISTRY.get_sample_value("mlsp_outbound_requests_per_call_sum", {"peer": "shared"})
    assert carried == len(requests)
    on_peer = REGISTRY.get_sample_value(
        "mlsp_outbound_request_duration_seconds_count", {"peer": "shared"}
    )
    queued = REGISTRY.get_sample_value("mlsp_outbound_queue_seconds_sum", {"peer": "shared"})
    assert on_peer == len(requests)  # each request's own time on the peer
    assert queued is not None
    assert queued > 0
    assert calls is not None
    assert calls < len(requests)
