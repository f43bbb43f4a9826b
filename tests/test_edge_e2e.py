"""The edge, end to end: HAProxy in front of web-single's api (compose/edge.yaml, EDGE=1).

With a tiny bound (2 requests at the api at once, 2 waiting in the edge), a flood gets only
200s and 503s; every 503 is the contract's JSON error with Retry-After and the request id
it answers, refused by the edge (the api, its own bound off, refuses nothing); probes
through the edge are never refused; the api answers normally right after.
"""

import asyncio
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from tests.bad_input import GOOD_ROW
from tests.compose_stack import ComposeStack
from tests.pattern_e2e import assert_refused_as_the_contract_says, flood

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack() -> Iterator[ComposeStack]:
    settings = {"EDGE_MAXCONN": "2", "EDGE_MAX_QUEUE": "2", "MAX_REQUESTS_IN_FLIGHT": "0"}
    with ComposeStack("web-single", edge=True, **settings) as stack:
        yield stack


def test_the_edge_takes_the_published_port_and_runs_as_non_root(stack: ComposeStack) -> None:
    running = stack.compose("ps", "--format", "{{.Service}} {{.Health}}").split("\n")
    assert sorted(line for line in running if line) == ["api healthy", "edge healthy"]
    assert stack.compose("port", "edge", "8080").strip() == f"127.0.0.1:{stack.port}"
    assert stack.compose("port", "api", "8080", check=False).strip() in ("", ":0")
    assert stack.compose("exec", "-T", "edge", "id", "-u").strip() == "10001"


def test_a_request_id_travels_through_the_edge(stack: ComposeStack) -> None:
    answer = stack.post("/predict", json={"instances": [GOOD_ROW]}, headers={"X-Request-ID": "e-1"})
    assert answer.status_code == 200
    assert answer.headers["x-request-id"] == "e-1"
    assert stack.traced("api", "e-1")  # the api logged the same id
    made = stack.post("/predict", json={"instances": [GOOD_ROW]}, headers={"X-Request-ID": 'a"b'})
    assert made.headers["x-request-id"] not in ("", 'a"b')  # not sane: a new one


def test_past_the_bound_the_edge_refuses_with_the_contract_s_503_and_the_api_serves_after(
    stack: ComposeStack,
) -> None:
    predicts, probes = asyncio.run(flood(stack))
    assert_refused_as_the_contract_says(predicts, probes)
    assert "mlsp_http_requests_shed_total 0.0" in stack.get("/metrics").text  # the edge's work
    for _ in range(20):  # right after, one request at a time is never over the bound
        assert stack.post("/predict", json={"instances": [GOOD_ROW]}).status_code == 200


def test_the_edge_counts_what_it_refused(stack: ComposeStack) -> None:
    metrics = stack.compose(
        "exec", "-T", "edge", "bash", "-c",
        "exec 3<>/dev/tcp/127.0.0.1/8081; printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3",
    )  # fmt: skip
    refused = [
        line
        for line in metrics.splitlines()
        if line.startswith('haproxy_frontend_http_responses_total{proxy="public",code="5xx"}')
    ]
    assert len(refused) == 1
    assert float(refused[0].rsplit(" ", 1)[1]) > 0


def test_a_stopped_api_is_refused_as_unavailable_and_served_again(stack: ComposeStack) -> None:
    # The api's container alone: `compose stop api` would stop the edge too (a dependent).
    (api,) = stack.containers("api")
    subprocess.run(["docker", "stop", api], check=True, capture_output=True, timeout=60)
    try:
        stack.wait_for(
            lambda: _error_code(stack) == "dependency_unavailable",
            "the edge to see the api down",
        )
    finally:
        subprocess.run(["docker", "start", api], check=True, capture_output=True, timeout=60)
    stack.wait_ready()
    stack.wait_for(
        lambda: stack.post("/predict", json={"instances": [GOOD_ROW]}).status_code == 200,
        "the api to answer through the edge again",
    )


def _error_code(stack: ComposeStack) -> str | None:
    """The error code the edge answers a prediction with now (None: no error answer).

    While the api stops, a request sent on a connection the api is closing gets no answer:
    the edge closes the client's connection so the client can retry (HAProxy's rule for a
    request it cannot replay safely), which the poll then does.
    """
    try:
        answer = stack.post("/predict", json={"instances": [GOOD_ROW]})
    except httpx.TransportError:
        return None
    return answer.json()["error"]["code"] if answer.status_code == 503 else None
