"""canary's api in-process, against real predictors (iris 1 and 2) and a real Redis."""

import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
import redis
from fastapi.testclient import TestClient

from conftest import PredictorProcess, _free_port, running_predictor
from shared.model.metadata import ModelError
from tests.api_fuzz import assert_no_server_errors
from tests.metrics_text import MetricsChange

ROW = [5.1, 3.5, 1.4, 0.2]
LOOPBACK = ("127.0.0.1", 50000)  # how `python -m admin` in the container reaches the api
CanaryClient = Callable[..., TestClient]


@pytest.fixture(scope="module")
def both_versions(versioned_model_repo: Path) -> Iterator[PredictorProcess]:
    """One predictor serving iris 1 and 2: the primary asks for 1, the canary for 2."""
    with running_predictor(versioned_model_repo, MODELS="iris", MODEL_VERSION="1") as predictor:
        yield predictor


@pytest.fixture
def canary_client(
    load_service: Callable[..., ModuleType],
    both_versions: PredictorProcess,
    versioned_model_repo: Path,
    redis_url: str,
) -> Iterator[CanaryClient]:
    """Start the api with ``env`` added; its TestClient comes from the loopback."""
    clients: list[TestClient] = []

    def start(**env: str) -> TestClient:
        settings = {
            "MODEL_DIR": str(versioned_model_repo),
            "PREDICTOR_URL": both_versions.grpc_target,
            "CANARY_URL": both_versions.grpc_target,
            "MODEL_VERSION": "1",
            "REDIS_URL": redis_url,
            "WEIGHTS_REFRESH_S": "0.1",
            **env,
        }
        client = TestClient(load_service("canary", "api", **settings).app, client=LOOPBACK)
        clients.append(client.__enter__())
        return client

    yield start
    for client in clients:
        client.__exit__(None, None, None)


def predict(client: TestClient, key: str | None = None) -> tuple[str, str]:
    """One prediction: the X-Variant header and the answer's model_version."""
    headers = {"X-Client-Id": key} if key else {}
    answer = client.post("/predict", json={"instances": [ROW]}, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.headers["X-Variant"], answer.json()["model_version"]


def test_the_split_follows_the_weights_and_each_answer_names_its_version(
    canary_client: CanaryClient,
) -> None:
    client = canary_client()
    change = MetricsChange(lambda: client.get("/metrics").text)
    answers = Counter(predict(client, f"user-{i}") for i in range(400))
    assert set(answers) == {("primary", "1"), ("canary", "2")}  # the header matches the version
    assert 20 <= answers["canary", "2"] <= 60  # 10% of 400 (the hash of these keys: 40 +- 20)
    assert change.increase("mlsp_canary_assigned_total", variant="canary") == answers["canary", "2"]
    assert (
        change.increase("mlsp_canary_latency_seconds_count", variant="primary")
        == answers["primary", "1"]
    )
    assert (
        change.increase("mlsp_canary_rows_total", variant="canary", label="setosa")
        == answers["canary", "2"]
    )
    assert change.increase("mlsp_canary_fallbacks_total") == 0
    state = client.get("/canary").json()
    assert state["variants"] == {"primary": "iris:1", "canary": "iris:2"}
    assert state["weights"] == {"primary": 90, "canary": 10}
    assert state["canary_problem"] is None


def test_a_client_keeps_its_variant(canary_client: CanaryClient) -> None:
    client = canary_client(CANARY_WEIGHT="50")
    for key in ("alice", "bob", "carol", "dave"):
        assert len({predict(client, key) for _ in range(10)}) == 1


def test_weights_change_at_run_time_for_every_process(
    canary_client: CanaryClient, redis_url: str
) -> None:
    client = canary_client()
    changed = client.put("/canary/weights", json={"primary": 0, "canary": 100})
    assert changed.status_code == 200, changed.text
    assert changed.json()["source"] == "redis"
    assert {predict(client, f"u{i}")[0] for i in range(20)} == {"canary"}
    # Another process (or replica) writes them: this one reads them within WEIGHTS_REFRESH_S.
    redis.Redis.from_url(redis_url).set("mlsp:canary:weights", '{"primary": 100, "canary": 0}')
    deadline = time.monotonic() + 5
    while client.get("/canary").json()["weights"]["primary"] != 100:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert {predict(client, f"u{i}")[0] for i in range(20)} == {"primary"}
    assert 'mlsp_canary_weight{variant="primary"} 100.0' in client.get("/metrics").text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"primary": 60, "canary": 50}, "primary+canary"),
        ({"primary": -10, "canary": 110}, "primary"),
        ({"primary": 90, "canary": 5, "shadow": 5}, "shadow"),
        ({"canary": 100}, "primary"),
    ],
)
def test_bad_weights_get_422_naming_the_field_and_change_nothing(
    canary_client: CanaryClient, body: dict, field: str
) -> None:
    client = canary_client()
    refused = client.put("/canary/weights", json=body)
    assert refused.status_code == 422
    assert refused.json()["error"]["field"] == field
    assert client.get("/canary").json()["weights"] == {"primary": 90, "canary": 10}


def test_weights_change_only_from_the_loopback(canary_client: CanaryClient) -> None:
    client = canary_client()
    outsider = TestClient(client.app, client=("172.18.0.1", 40000))  # another container
    refused = outsider.put("/canary/weights", json={"primary": 0, "canary": 100})
    assert refused.status_code == 403
    assert client.get("/canary").json()["weights"] == {"primary": 90, "canary": 10}


def test_a_canary_that_is_down_falls_back_to_the_primary(canary_client: CanaryClient) -> None:
    client = canary_client(CANARY_URL=f"127.0.0.1:{_free_port()}", CANARY_WEIGHT="100")
    change = MetricsChange(lambda: client.get("/metrics").text)
    assert {predict(client, f"u{i}") for i in range(5)} == {("primary", "1")}
    assert change.increase("mlsp_canary_assigned_total", variant="canary") == 5
    assert change.increase("mlsp_canary_fallbacks_total") == 5
    assert (
        change.increase("mlsp_canary_errors_total", variant="canary", code="dependency_unavailable")
        == 5
    )
    assert client.get("/health/ready").status_code == 200  # the primary's alone
    assert "unreachable" in client.get("/canary").json()["canary_problem"]


def test_a_slow_canary_falls_back_within_the_deadline(
    canary_client: CanaryClient, slow_predictor: PredictorProcess
) -> None:
    client = canary_client(
        CANARY_URL=slow_predictor.grpc_target,
        CANARY_VERSION="1",
        CANARY_WEIGHT="100",
        CANARY_TIMEOUT_S="0.1",
    )
    change = MetricsChange(lambda: client.get("/metrics").text)
    assert predict(client, "patient") == ("primary", "1")
    assert (
        change.increase("mlsp_canary_errors_total", variant="canary", code="dependency_timeout")
        == 1
    )
    assert change.increase("mlsp_canary_fallbacks_total") == 1


def test_the_api_serves_the_last_weights_while_redis_is_down(canary_client: CanaryClient) -> None:
    client = canary_client(
        REDIS_URL=f"redis://127.0.0.1:{_free_port()}/0",
        REDIS_CONNECT_TIMEOUT_S="0.2",
        CANARY_WEIGHT="0",
    )
    assert {predict(client, f"u{i}")[0] for i in range(5)} == {"primary"}
    refused = client.put("/canary/weights", json={"primary": 0, "canary": 100})
    assert refused.status_code == 503
    assert refused.headers["Retry-After"]
    state = client.get("/canary").json()
    assert state["weights"] == {"primary": 100, "canary": 0}
    assert "ConnectionError" in state["problem"]


def test_bad_input_is_refused(canary_client: CanaryClient) -> None:
    client = canary_client()
    change = MetricsChange(lambda: client.get("/metrics").text)
    answer = client.post("/predict", json={"instances": [[1, 2, 3]]})
    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == "instances[0]"
    assert change.increase("mlsp_canary_assigned_total") == 0


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"CANARY_MODEL": "digits", "CANARY_VERSION": "1"}, "takes"),
        ({"CANARY_MODEL": "iris-specialist", "CANARY_VERSION": "1"}, "has classes"),
        ({"CANARY_TIMEOUT_S": "1.0", "PREDICTOR_TIMEOUT_S": "1.0"}, "canary_timeout_s"),
        ({"CANARY_WEIGHT": "101"}, "canary_weight"),
    ],
)
def test_bad_settings_are_refused_at_start(
    load_service: Callable[..., ModuleType],
    versioned_model_repo: Path,
    env: dict[str, str],
    problem: str,
) -> None:
    env |= {"PREDICTOR_URL": "127.0.0.1:1", "CANARY_URL": "127.0.0.1:1"}
    env |= {"MODEL_DIR": str(versioned_model_repo), "REDIS_URL": "redis://127.0.0.1:1/0"}
    with (  # at import (the settings) or at start (the lifespan)
        pytest.raises((ModelError, ValueError), match=problem),
        TestClient(load_service("canary", "api", **env).app),
    ):
        pass


def test_generated_requests_get_no_server_error(canary_client: CanaryClient) -> None:
    assert_no_server_errors(canary_client())
