"""sync with several predictor replicas, end to end, over gRPC and over REST: under a steady
load from the test, a replica stopped (SIGTERM: it drains) or killed (SIGKILL: the call in
flight is retried on the other) fails no request, and with three replicas the calls spread
evenly, each replica's share read from its own /metrics."""

import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.chaos import Load
from tests.compose_stack import ComposeStack
from tests.metrics_text import infer_calls, sample_total

pytestmark = pytest.mark.e2e

PREDICTOR_URLS = {"grpc": "predictor:8081", "rest": "http://predictor:8080"}
LOAD_S = 6.0  # seconds of load around each fault, and for the spread
FAULT_AFTER_S = 2.0  # seconds of load before the fault
EVEN_WITHIN = 0.2  # each replica's share of calls within 20% of an even split


@pytest.fixture(scope="module", params=sorted(PREDICTOR_URLS))
def protocol(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def stack(protocol: str) -> Iterator[ComposeStack]:
    env = {"PREDICTOR_URL": PREDICTOR_URLS[protocol], "ACCESS_LOG": "false"}
    with ComposeStack("sync", **env) as stack:
        yield stack


def scale(stack: ComposeStack, replicas: int) -> list[str]:
    """``replicas`` predictors running and healthy; their container ids."""
    # Not --wait: on a busy machine a healthcheck may time out once, and --wait gives up.
    stack.compose(
        "up", "-d", "--no-deps", "--no-recreate", "--scale", f"predictor={replicas}", "predictor"
    )
    containers = stack.containers("predictor")
    assert len(containers) == replicas
    stack.wait_for(
        lambda: all(map(healthy, containers)), f"{replicas} healthy predictors", timeout_s=120
    )
    return containers


def healthy(container: str) -> bool:
    """True when the container's healthcheck says healthy."""
    status = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Health.Status}}", container],
        capture_output=True,
        text=True,
        check=True,
    )
    return status.stdout.strip() == "healthy"


def retries(stack: ComposeStack) -> float:
    """The api's retries of predictor calls so far, from its metrics."""
    return sample_total(stack.get("/metrics").text, "mlsp_outbound_retries_total")


def calls_by_replica(stack: ComposeStack, containers: list[str]) -> list[float]:
    """The inference calls each replica has answered, over either protocol, from its metrics."""
    return [infer_calls(stack.metrics_of(container)) for container in containers]


def docker(*args: str) -> None:
    subprocess.run(["docker", *args], check=True, capture_output=True, timeout=60)


def restart(stack: ComposeStack, container: str) -> None:
    """Start ``container`` again and wait until it is healthy and the api is ready."""
    docker("start", container)
    stack.wait_for(lambda: healthy(container), f"{container} healthy again", timeout_s=120)
    stack.wait_ready()


def under_load(stack: ComposeStack, fault: list[str]) -> Load:
    """Back-to-back requests from a few threads; ``docker <fault>`` in the middle."""
    load = Load(stack, pause_s=0).start()
    try:
        time.sleep(FAULT_AFTER_S)
        docker(*fault)
        time.sleep(LOAD_S - FAULT_AFTER_S)
    finally:
        load.stop()
    return load


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_a_replica_stopped_or_killed_under_load_fails_no_request(
    stack: ComposeStack, protocol: str, how: str
) -> None:
    first, second = scale(stack, 2)
    before = calls_by_replica(stack, [first, second])
    retried = retries(stack)
    load = under_load(stack, [how, first])
    failed = sum(not sample.ok for sample in load.samples)
    print(
        f"\n{protocol}, docker {how} of 1 of 2 replicas: {failed} of {len(load.samples)} "
        f"requests failed, {retries(stack) - retried:g} calls retried"
    )
    served = infer_calls(stack.metrics_of(second)) - before[1]
    try:
        assert failed == 0
        assert len(load.samples) > 100
        assert served > 0
    finally:
        restart(stack, first)


def test_calls_spread_evenly_over_three_replicas(stack: ComposeStack, protocol: str) -> None:
    containers = scale(stack, 3)
    load = Load(stack, pause_s=0).start()
    try:
        joined = time.monotonic()
        stack.wait_for(  # the replicas that just came are found by the next lookup
            lambda: all(calls_by_replica(stack, containers)),
            "every replica to get calls",
            timeout_s=60,
        )
        print(f"\n{protocol}: every replica had calls {time.monotonic() - joined:.1f} s after")
        before = calls_by_replica(stack, containers)
        time.sleep(LOAD_S)
        after = calls_by_replica(stack, containers)
    finally:
        load.stop()
    calls = [a - b for a, b in zip(after, before, strict=True)]
    even = sum(calls) / len(calls)
    print(f"{protocol}: calls per replica over {LOAD_S:g} s: {calls}")
    assert sum(calls) > 100
    for count in calls:
        assert abs(count - even) <= EVEN_WITHIN * even, f"{calls} is not an even split"
