"""shadow's api in-process, against real predictor processes (and a candidate that is down)."""

from collections.abc import Callable, Iterator
from types import ModuleType

import pytest
from fastapi.testclient import TestClient

from conftest import PredictorProcess, _free_port
from shared.model.metadata import ModelError
from tests.api_fuzz import assert_no_server_errors
from tests.metrics_text import MetricsChange

ROW = [5.1, 3.5, 1.4, 0.2]
ShadowClient = Callable[..., TestClient]


@pytest.fixture
def shadow_client(
    load_service: Callable[..., ModuleType], predictor_server: PredictorProcess
) -> Iterator[ShadowClient]:
    """Start the api with ``env`` added (primary and candidate on ``predictor_server``)."""
    clients: list[TestClient] = []

    def start(**env: str) -> TestClient:
        settings = {
            "PREDICTOR_URL": predictor_server.grpc_target,
            "CANDIDATE_URL": predictor_server.grpc_target,
            "MODEL_VERSION": "1",
            "CANDIDATE_MODEL": "iris-boosted",
            **env,
        }
        client = TestClient(load_service("shadow", "api", **settings).app)
        clients.append(client.__enter__())
        return client

    yield start
    for client in clients:
        client.__exit__(None, None, None)


def metrics_reader(client: TestClient) -> MetricsChange:
    return MetricsChange(lambda: client.get("/metrics").text)


def test_answers_are_the_primarys_and_the_candidates_are_recorded(
    shadow_client: ShadowClient,
) -> None:
    client = shadow_client()
    examples = client.get("/model").json()["examples"]
    change = metrics_reader(client)
    answer = client.post("/predict", json={"instances": [e["input"] for e in examples]})
    assert answer.status_code == 200
    body = answer.json()
    assert [p["label"] for p in body["predictions"]] == [e["label"] for e in examples]
    assert (body["model_name"], body["model_version"]) == ("iris", "1")
    # The candidate (iris-boosted) answered each row in the background: counted by both labels.
    rows = change.wait_for_increase("mlsp_shadow_rows_total", len(examples))
    assert rows == len(examples)
    agreed = sum(
        change.increase("mlsp_shadow_rows_total", primary_label=label, candidate_label=label)
        for label in {e["label"] for e in examples}
    )
    assert agreed == len(examples)  # on the model's own examples both models are right
    assert change.increase("mlsp_mirror_calls_total", mirror="candidate", outcome="ok") == 1
    assert change.increase("mlsp_shadow_latency_seconds_count", model="candidate") == 1
    assert change.increase("mlsp_shadow_latency_seconds_count", model="primary") == 1
    assert change.increase("mlsp_outbound_duration_seconds_count", peer="candidate") == 1
    state = client.get("/shadow").json()
    assert state["primary"] == "iris:1"
    assert state["candidate"] == "iris-boosted:1"
    assert state["candidate_problem"] is None


def test_a_candidate_that_is_down_costs_the_answers_nothing(shadow_client: ShadowClient) -> None:
    client = shadow_client(CANDIDATE_URL=f"127.0.0.1:{_free_port()}", CANDIDATE_TIMEOUT_S="0.5")
    change = metrics_reader(client)
    for _ in range(3):
        assert client.post("/predict", json={"instances": [ROW]}).status_code == 200
    # Every mirrored row is accounted for, whether its window's call carried one request
    # or several: refused at once, or (once the channel backs off between attempts to
    # reconnect) still waiting when the mirror's own deadline passed; never an answer.
    assert change.wait_for_increase("mlsp_mirror_rows_total", 3, mirror="candidate") == 3
    failed, timed_out = (
        change.increase("mlsp_mirror_rows_total", mirror="candidate", outcome=outcome)
        for outcome in ("failed", "timeout")
    )
    assert failed >= 1
    assert failed + timed_out == 3
    assert change.increase("mlsp_shadow_rows_total") == 0
    assert client.get("/health/ready").json() == {"status": "ready"}  # the primary's alone
    assert "unreachable" in client.get("/shadow").json()["candidate_problem"]


def test_a_slow_candidate_times_out_in_the_background(
    shadow_client: ShadowClient, slow_predictor: PredictorProcess
) -> None:
    client = shadow_client(CANDIDATE_URL=slow_predictor.grpc_target, CANDIDATE_TIMEOUT_S="0.05")
    change = metrics_reader(client)
    answer = client.post("/predict", json={"instances": [ROW]})
    assert answer.status_code == 200
    assert answer.json()["predictions"][0]["label"] == "setosa"
    timeouts = change.wait_for_increase(
        "mlsp_mirror_calls_total", 1, mirror="candidate", outcome="timeout"
    )
    assert timeouts == 1


def test_share_zero_mirrors_nothing(
    shadow_client: ShadowClient, predictor_server: PredictorProcess
) -> None:
    client = shadow_client(SHADOW_SHARE="0")
    change = metrics_reader(client)
    assert client.post("/predict", json={"instances": [ROW]}).status_code == 200
    assert change.increase("mlsp_shadow_latency_seconds_count", model="primary") == 1
    assert change.increase("mlsp_mirror_calls_total") == 0
    assert change.increase("mlsp_outbound_duration_seconds_count", peer="candidate") == 0


def test_bad_input_is_refused_and_not_mirrored(shadow_client: ShadowClient) -> None:
    client = shadow_client()
    change = metrics_reader(client)
    answer = client.post("/predict", json={"instances": [[1, 2, 3]]})
    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == "instances[0]"
    assert change.increase("mlsp_mirror_calls_total") == 0


@pytest.mark.parametrize(
    ("candidate", "problem"),
    [("digits", "takes"), ("iris-gate", "does 'anomaly'")],
)
def test_a_candidate_that_cannot_be_compared_is_refused_at_start(
    load_service: Callable[..., ModuleType], candidate: str, problem: str
) -> None:
    service = load_service(
        "shadow",
        "api",
        PREDICTOR_URL="127.0.0.1:1",
        CANDIDATE_URL="127.0.0.1:1",
        CANDIDATE_MODEL=candidate,
    )
    with pytest.raises(ModelError, match=problem), TestClient(service.app):
        pass


@pytest.mark.parametrize(
    ("env", "field"),
    [({"SHADOW_SHARE": "1.5"}, "shadow_share"), ({"SHADOW_MAX_IN_FLIGHT": "0"}, "shadow_max")],
)
def test_bad_settings_are_refused_naming_the_field(
    load_service: Callable[..., ModuleType], env: dict[str, str], field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        load_service(
            "shadow", "api", PREDICTOR_URL="127.0.0.1:1", CANDIDATE_URL="127.0.0.1:1", **env
        )


def test_generated_requests_get_no_server_error(shadow_client: ShadowClient) -> None:
    assert_no_server_errors(shadow_client())
