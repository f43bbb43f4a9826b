"""V2Client over several replicas: the channel's service config, round robin, one retry on
UNAVAILABLE on another replica (never after an answer or the deadline), the retry budget,
and a replica that says NOT_SERVING leaving the rotation. Real grpc.aio servers in process."""

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from shared.kit.errors import DependencyTimeout, DependencyUnavailable, InvalidInput
from shared.v2.client import V2Client, channel_options, channel_target
from shared.v2.grpc_server import StatusError, rpc
from shared.v2.proto import inference_pb2 as pb
from shared.v2.proto import inference_pb2_grpc as pb_grpc
from shared.v2.replicas import ReplicaSettings, grpc_service_config

ROWS = np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)
Answer = Callable[[], Awaitable[None]]


async def answer_ok() -> None:
    return None


def answer_with(code: grpc.StatusCode) -> Answer:
    async def answer() -> None:
        raise StatusError(code, f"told to answer {code.name}")

    return answer


class Replica(pb_grpc.GRPCInferenceServiceServicer):
    """One replica: answers ModelInfer as ``answer`` says, naming itself; counts its calls."""

    def __init__(self, name: str, answer: Answer) -> None:
        self.name = name
        self.answer = answer
        self.calls = 0
        self.live_calls = 0

    @rpc
    async def ServerLive(self, request, context) -> pb.ServerLiveResponse:  # noqa: N802
        self.live_calls += 1
        return pb.ServerLiveResponse(live=True)

    @rpc
    async def ModelInfer(self, request, context) -> pb.ModelInferResponse:  # noqa: N802
        self.calls += 1
        await self.answer()
        response = pb.ModelInferResponse(model_name=self.name)
        response.outputs.add(name="replica", datatype="INT32", shape=[1])
        response.raw_output_contents.append(np.array([self.calls], np.int32).tobytes())
        return response


@dataclass
class Running:
    replica: Replica
    server: grpc.aio.Server
    health: health.aio.HealthServicer
    address: str


@pytest.fixture
async def start() -> AsyncIterator[Callable[[str, Answer], Awaitable[Running]]]:
    """Start replicas (each a grpc.aio server with the health service) on 127.0.0.1."""
    started: list[Running] = []

    async def start_replica(name: str, answer: Answer = answer_ok) -> Running:
        replica = Replica(name, answer)
        server = grpc.aio.server()
        pb_grpc.add_GRPCInferenceServiceServicer_to_server(replica, server)
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        running = Running(replica, server, health_servicer, f"127.0.0.1:{port}")
        started.append(running)
        return running

    yield start_replica
    await asyncio.gather(*(running.server.stop(0) for running in started))


def target(*replicas: Running) -> str:
    """One target naming every replica (what DNS gives for a scaled service)."""
    return "ipv4:" + ",".join(running.address for running in replicas)


def retries_counted(peer: str) -> float:
    return REGISTRY.get_sample_value("mlsp_outbound_retries_total", {"peer": peer}) or 0.0


async def connect_all(client: V2Client, replicas: list[Running]) -> None:
    """Return once the client has a connection to every replica (calls then go in turn)."""
    while not all(running.replica.live_calls for running in replicas):
        await client.stub.ServerLive(pb.ServerLiveRequest(), timeout=2)


async def infer_many(client: V2Client, calls: int) -> Counter[str]:
    """``calls`` calls one after the other; the outcome of each (a replica's name or an error)."""
    outcomes: Counter[str] = Counter()
    for _ in range(calls):
        try:
            await client.infer("iris", {"input": ROWS}, ["replica"])
            outcomes["ok"] += 1
        except (DependencyUnavailable, DependencyTimeout, InvalidInput) as exc:
            outcomes[type(exc).__name__] += 1
    return outcomes


def test_the_service_config_balances_and_retries_once_on_unavailable_under_a_budget() -> None:
    config = grpc_service_config(ReplicaSettings())
    assert config["loadBalancingConfig"] == [{"round_robin": {}}]
    assert config["healthCheckConfig"] == {"serviceName": ""}
    [method] = config["methodConfig"]
    assert method["name"] == [{"service": "inference.GRPCInferenceService"}]
    assert method["retryPolicy"]["maxAttempts"] == 2
    assert method["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert config["retryThrottling"] == {"maxTokens": 10, "tokenRatio": 0.1}
    options = dict(channel_options(ReplicaSettings()))
    assert json.loads(options["grpc.service_config"]) == config
    assert options["grpc.enable_retries"] == 1
    assert options["grpc.dns_min_time_between_resolutions_ms"] == 2000


def test_no_retries_leaves_only_the_balancing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEER_RETRIES", "0")
    settings = ReplicaSettings()
    assert set(grpc_service_config(settings)) == {"loadBalancingConfig", "healthCheckConfig"}
    assert dict(channel_options(settings))["grpc.enable_retries"] == 0


def test_bad_retry_settings_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEER_RETRY_BUDGET_RATIO", "0")
    with pytest.raises(ValueError, match="peer_retry_budget_ratio"):
        ReplicaSettings()


def test_a_host_goes_through_dns_and_a_named_resolver_stays() -> None:
    assert channel_target("predictor:8081") == "dns:///predictor:8081"
    assert channel_target("dns:///predictor:8081") == "dns:///predictor:8081"
    assert channel_target("ipv4:10.0.0.1:8081,10.0.0.2:8081").startswith("ipv4:")


async def test_calls_go_round_robin_over_the_replicas(start) -> None:
    replicas = [await start(name) for name in "abc"]
    client = V2Client(target(*replicas), timeout_s=2)
    try:
        await connect_all(client, replicas)
        assert await infer_many(client, 30) == {"ok": 30}
    finally:
        await client.close()
    assert [running.replica.calls for running in replicas] == [10, 10, 10]


async def test_an_unavailable_answer_is_retried_once_on_another_replica(start) -> None:
    stopping = await start("stopping", answer_with(grpc.StatusCode.UNAVAILABLE))
    healthy = await start("healthy")
    client = V2Client(target(stopping, healthy), timeout_s=2, peer="retried")
    before = retries_counted("retried")
    try:
        await connect_all(client, [stopping, healthy])
        assert await infer_many(client, 4) == {"ok": 4}
    finally:
        await client.close()
    # Turns alternate, so every call (but maybe the first) went to the stopping replica
    # first, then to the healthy one; 4 failures are within the budget (10 tokens).
    assert healthy.replica.calls == 4
    assert stopping.replica.calls == retries_counted("retried") - before >= 3


async def test_a_stopped_replica_fails_no_call(start) -> None:
    a, b = await start("a"), await start("b")
    client = V2Client(target(a, b), timeout_s=2)
    try:
        await connect_all(client, [a, b])
        assert await infer_many(client, 4) == {"ok": 4}
        await a.server.stop(None)
        assert await infer_many(client, 10) == {"ok": 10}
    finally:
        await client.close()
    assert b.replica.calls == 12


async def test_an_answer_or_the_deadline_is_never_retried(start) -> None:
    async def slow() -> None:
        await asyncio.sleep(1)

    refusing = await start("refusing", answer_with(grpc.StatusCode.INVALID_ARGUMENT))
    slow_one = await start("slow", slow)
    failing = await start("failing", answer_with(grpc.StatusCode.INTERNAL))
    for running, error in (
        (refusing, "InvalidInput"),
        (slow_one, "DependencyTimeout"),
        (failing, "DependencyUnavailable"),
    ):
        other = await start("other")
        client = V2Client(target(running, other), timeout_s=0.3, peer="no-retry")
        try:
            await connect_all(client, [running, other])
            outcomes = await infer_many(client, 4)
        finally:
            await client.close()
        assert outcomes == {"ok": 2, error: 2}
        assert (running.replica.calls, other.replica.calls) == (2, 2)
    assert retries_counted("no-retry") == 0


async def test_the_budget_stops_retries_when_most_calls_fail(start) -> None:
    down = [await start(name, answer_with(grpc.StatusCode.UNAVAILABLE)) for name in "ab"]
    client = V2Client(target(*down), timeout_s=2)
    try:
        assert await infer_many(client, 20) == {"DependencyUnavailable": 20}
    finally:
        await client.close()
    attempts = sum(running.replica.calls for running in down)
    # 10 tokens, one per failed attempt: calls are retried while more than 5 are left.
    assert attempts == 20 + 2


async def test_a_replica_that_is_not_serving_leaves_the_rotation(start) -> None:
    draining, staying = await start("draining"), await start("staying")
    client = V2Client(target(draining, staying), timeout_s=2)
    try:
        await connect_all(client, [draining, staying])
        assert await infer_many(client, 4) == {"ok": 4}
        await draining.health.enter_graceful_shutdown()
        await asyncio.sleep(0.2)  # the health watch brings the news
        assert await infer_many(client, 10) == {"ok": 10}
    finally:
        await client.close()
    assert (draining.replica.calls, staying.replica.calls) == (2, 12)
