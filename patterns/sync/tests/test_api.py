"""sync's api in-process, against a real predictor process (and against none)."""

from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from fastapi.testclient import TestClient

from conftest import PredictorProcess, _free_port, running_predictor
from tests.api_fuzz import assert_no_server_errors
from tests.metrics_text import MetricsChange

ROW = [5.1, 3.5, 1.4, 0.2]


@pytest.fixture
def client(
    load_service: Callable[..., ModuleType], predictor_server: PredictorProcess
) -> Iterator[TestClient]:
    service = load_service("sync", "api", PREDICTOR_URL=predictor_server.grpc_target)
    with TestClient(service.app) as client:
        yield client


@pytest.fixture
def client_without_predictor(load_service: Callable[..., ModuleType]) -> Iterator[TestClient]:
    service = load_service(
        "sync", "api", PREDICTOR_URL=f"127.0.0.1:{_free_port()}", PREDICTOR_TIMEOUT_S="0.5"
    )
    with TestClient(service.app) as client:
        yield client


def test_predictions_come_from_the_predictor(client: TestClient) -> None:
    examples = client.get("/model").json()["examples"]
    change = MetricsChange(lambda: client.get("/metrics").text)
    answer = client.post("/predict", json={"instances": [e["input"] for e in examples]})
    assert answer.status_code == 200
    body = answer.json()
    assert [p["label"] for p in body["predictions"]] == [e["label"] for e in examples]
    assert (body["model_name"], body["model_version"]) == ("iris", "1")
    assert client.get("/health/ready").json() == {"status": "ready"}
    calls = change.increase("mlsp_outbound_duration_seconds_count", outcome="ok", peer="predictor")
    assert calls == 1


def test_bad_input_is_refused_before_calling_the_predictor(
    client: TestClient, predictor_server: PredictorProcess
) -> None:
    calls = predictor_server.infer_calls()
    answer = client.post("/predict", json={"instances": [[1, 2, 3]]})
    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == "instances[0]"
    assert predictor_server.infer_calls() == calls
    assert client.post("/predict", json={"instances": [ROW]}).status_code == 200
    assert predictor_server.infer_calls() == calls + 1  # the count does see a call


def test_predictor_down_is_503_and_not_ready(client_without_predictor: TestClient) -> None:
    answer = client_without_predictor.post("/predict", json={"instances": [ROW]})
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "1"
    assert answer.json()["error"] == {
        "code": "dependency_unavailable",
        "message": "predictor is unavailable; retry shortly",
        "request_id": answer.headers["x-request-id"],
    }
    ready = client_without_predictor.get("/health/ready")
    assert ready.status_code == 503
    assert "unreachable or does not serve iris" in ready.json()["checks"]["predictor"]


def test_settings_need_a_predictor_url(
    load_service: Callable[..., ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PREDICTOR_URL", raising=False)
    with pytest.raises(ValueError, match="predictor_url"):
        load_service("sync", "api")


def test_generated_requests_get_no_server_error(client: TestClient) -> None:
    assert_no_server_errors(client)


@pytest.mark.parametrize(("api_version", "answered"), [(None, "2"), ("1", "1")])
def test_the_answer_names_the_version_that_answered(
    load_service: Callable[..., ModuleType],
    versioned_model_repo: Path,
    api_version: str | None,
    answered: str,
) -> None:
    """Without MODEL_VERSION the api follows the predictor's default (2 here); with it, the
    api asks for that version."""
    with running_predictor(versioned_model_repo, MODELS="iris", MODEL_VERSION="2") as predictor:
        settings = {"MODEL_DIR": str(versioned_model_repo), "PREDICTOR_URL": predictor.grpc_target}
        if api_version:
            settings["MODEL_VERSION"] = api_version
        service = load_service("sync", "api", **settings)
        with TestClient(service.app) as client:
            answer = client.post("/predict", json={"instances": [ROW, ROW]})
            assert client.get("/health/ready").status_code == 200
    assert answer.status_code == 200
    assert answer.json()["model_version"] == answered
