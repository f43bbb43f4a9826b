"""V2RestClient over several replicas: calls in turn over the host's addresses, one retry on
another replica after a refused or reset connection (never after an answer or the deadline),
the retry budget. Real aiohttp servers on 127.0.0.1 and 127.0.0.2, one port; the host's
lookup answers those two addresses (what DNS gives for a scaled service)."""

import asyncio
import socket
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import numpy as np
import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from conftest import _free_port
from shared.kit.errors import DependencyTimeout, DependencyUnavailable
from shared.v2.replicas import Addresses, RetryBudget
from shared.v2.rest_client import V2RestClient

ROWS = np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)
ANSWER = {"outputs": [{"name": "label", "shape": [1], "datatype": "INT64", "data": [0]}]}
Handler = Callable[[web.Request], Awaitable[web.Response]]


class TwoAddresses(Addresses):
    """The host's lookup, answering the two loopback addresses the replicas listen on."""

    async def resolve(self) -> None:
        self.addresses = ["127.0.0.1", "127.0.0.2"]
        self.lookups = getattr(self, "lookups", 0) + 1


async def answer_ok(_: web.Request) -> web.Response:
    return web.json_response(ANSWER)


class Replicas:
    """A replica on each loopback address, same port; each counts its calls."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.calls: Counter[str] = Counter()
        self.runners: dict[str, web.AppRunner] = {}

    async def start(self, address: str, handler: Handler = answer_ok) -> None:
        async def counted(request: web.Request) -> web.Response:
            self.calls[address] += 1
            return await handler(request)

        app = web.Application()
        app.router.add_post("/v2/models/{model}/infer", counted)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, address, self.port).start()
        self.runners[address] = runner

    async def stop(self, address: str) -> None:
        await self.runners.pop(address).cleanup()

    def client(self, timeout_s: float = 2, peer: str = "predictor") -> V2RestClient:
        client = V2RestClient(f"http://predictor:{self.port}", timeout_s, peer)
        client.addresses = TwoAddresses("predictor", self.port, refresh_s=60)
        return client


@pytest.fixture
async def replicas() -> AsyncIterator[Replicas]:
    running = Replicas(_free_port())
    yield running
    await asyncio.gather(*(runner.cleanup() for runner in running.runners.values()))


def retries_counted(peer: str) -> float:
    return REGISTRY.get_sample_value("mlsp_outbound_retries_total", {"peer": peer}) or 0.0


async def infer_many(client: V2RestClient, calls: int) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    try:
        for _ in range(calls):
            try:
                await client.infer("iris", {"input": ROWS}, ["label"])
                outcomes["ok"] += 1
            except (DependencyUnavailable, DependencyTimeout) as exc:
                outcomes[type(exc).__name__] += 1
    finally:
        await client.close()
    return outcomes


async def test_calls_go_in_turn_to_every_address(replicas: Replicas) -> None:
    await replicas.start("127.0.0.1")
    await replicas.start("127.0.0.2")
    assert await infer_many(replicas.client(), 10) == {"ok": 10}
    assert replicas.calls == {"127.0.0.1": 5, "127.0.0.2": 5}


async def test_a_stopped_replica_fails_no_call_and_leaves_the_turn(replicas: Replicas) -> None:
    await replicas.start("127.0.0.1")
    await replicas.start("127.0.0.2")
    client = replicas.client(peer="rest-retried")
    before = retries_counted("rest-retried")
    await client.infer("iris", {"input": ROWS}, ["label"])  # keeps a connection to each
    await client.infer("iris", {"input": ROWS}, ["label"])
    await replicas.stop("127.0.0.2")
    assert await infer_many(client, 10) == {"ok": 10}
    assert replicas.calls == {"127.0.0.1": 11, "127.0.0.2": 1}
    assert retries_counted("rest-retried") - before == 1  # then it was out of the turn


async def test_an_answer_or_the_deadline_is_never_retried(replicas: Replicas) -> None:
    async def overloaded(_: web.Request) -> web.Response:
        return web.json_response({"error": "busy"}, status=503)

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(1)
        return await answer_ok(request)

    for handler, error in ((overloaded, "DependencyUnavailable"), (slow, "DependencyTimeout")):
        replicas.calls.clear()
        await replicas.start("127.0.0.1", handler)
        await replicas.start("127.0.0.2")
        outcomes = await infer_many(replicas.client(timeout_s=0.3, peer="rest-no-retry"), 4)
        assert outcomes == {"ok": 2, error: 2}
        assert replicas.calls == {"127.0.0.1": 2, "127.0.0.2": 2}
        await asyncio.gather(replicas.stop("127.0.0.1"), replicas.stop("127.0.0.2"))
    assert retries_counted("rest-no-retry") == 0


async def test_the_budget_stops_retries_when_every_call_fails(replicas: Replicas) -> None:
    before = retries_counted("rest-budget")
    outcomes = await infer_many(replicas.client(peer="rest-budget"), 20)
    assert outcomes == {"DependencyUnavailable": 20}
    # 10 tokens, one per failed attempt: calls are retried while more than 5 are left.
    assert retries_counted("rest-budget") - before == 2


def test_the_budget_is_grpc_retry_throttling() -> None:
    budget = RetryBudget(max_tokens=10, ratio=0.1)
    for _ in range(4):
        budget.failed()
    assert budget.allows_retry()  # 6 tokens left, more than half
    budget.failed()
    assert not budget.allows_retry()  # 5: not more than half
    for _ in range(10):
        budget.succeeded()
    assert budget.allows_retry()  # each success gave back 0.1: 6 again
    for _ in range(1000):
        budget.succeeded()
    assert budget.tokens == 10  # never more than full


async def test_a_failed_address_is_skipped_for_a_while_and_the_host_looked_up() -> None:
    addresses = TwoAddresses("predictor", 8080, refresh_s=0.2)
    assert (
        sorted([await addresses.next() for _ in range(4)]) == ["127.0.0.1"] * 2 + ["127.0.0.2"] * 2
    )
    addresses.failed("127.0.0.2")
    assert [await addresses.next() for _ in range(3)] == ["127.0.0.1"] * 3
    await asyncio.sleep(0)  # the lookup the failure asked for, in the background
    assert addresses.lookups == 2
    addresses.failed("127.0.0.1")  # none left to skip to: every address is in the turn
    assert {await addresses.next() for _ in range(2)} == {"127.0.0.1", "127.0.0.2"}
    await asyncio.sleep(0.25)
    assert {await addresses.next() for _ in range(2)} == {"127.0.0.1", "127.0.0.2"}


async def test_a_host_whose_name_is_gone_leaves_no_address_to_call() -> None:
    addresses = Addresses("127.0.0.1", 8080, refresh_s=60)
    assert await addresses.next() == "127.0.0.1"
    addresses.host = "no-such-host.invalid"  # every replica stopped: the name is gone
    addresses.failed("127.0.0.1")
    await addresses.next()  # asks for a lookup, in the background
    await asyncio.sleep(0.5)
    assert addresses.addresses == []
    with pytest.raises(socket.gaierror):
        await addresses.next()


async def test_a_host_with_no_address_is_503() -> None:
    client = V2RestClient("http://no-such-host.invalid:8080", timeout_s=1)
    outcomes = await infer_many(client, 1)
    assert outcomes == {"DependencyUnavailable": 1}


def test_a_url_without_a_host_is_refused() -> None:
    for url in ("http://:8080", "predictor:8080"):
        with pytest.raises(ValueError, match="host"):
            V2RestClient(url, timeout_s=1)
