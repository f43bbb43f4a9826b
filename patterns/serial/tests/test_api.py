"""serial's api in-process, against real predictor processes: routing, stage times, failures."""

import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient

from conftest import PredictorProcess, _free_port
from shared.model.metadata import METADATA_FILE, ModelError
from shared.serving.model import OnnxModel
from tests.api_fuzz import assert_no_server_errors
from tests.bad_input import GOOD_ROW, BadInput, assert_refused, bad_inputs
from tests.metrics_text import MetricsChange

SETOSA = [5.1, 3.5, 1.4, 0.2]  # the classifier is sure
BORDERLINE = [6.3, 2.8, 5.1, 1.5]  # versicolor or virginica: the classifier is unsure
IN_MILLIMETRES = [51.0, 35.0, 14.0, 2.0]  # no iris is 5 cm wide: the gate says outlier


def stage_urls(gate: str, classifier: str, specialist: str) -> dict[str, str]:
    return {
        "PREDICTOR_GATE_URL": gate,
        "PREDICTOR_CLASSIFIER_URL": classifier,
        "PREDICTOR_SPECIALIST_URL": specialist,
    }


@pytest.fixture
def client(
    load_service: Callable[..., ModuleType], predictor_server: PredictorProcess
) -> Iterator[TestClient]:
    target = predictor_server.grpc_target
    service = load_service("serial", "api", **stage_urls(target, target, target))
    with TestClient(service.app) as client:
        yield client


@pytest.fixture
def models(model_repo: Path) -> dict[str, OnnxModel]:
    return {name: OnnxModel.load(model_repo, name) for name in ("iris", "iris-specialist")}


def test_each_row_takes_its_own_path(client: TestClient, models: dict[str, OnnxModel]) -> None:
    classifier = models["iris"].predict_proba(np.array([SETOSA, BORDERLINE], np.float32))
    assert classifier[0].max() >= 0.9 > classifier[1].max()  # what the routing depends on

    answer = client.post("/predict", json={"instances": [SETOSA, IN_MILLIMETRES, BORDERLINE]})
    assert answer.status_code == 200
    body = answer.json()
    sure, outlier, unsure = body["predictions"]
    assert sure["path"] == ["gate", "classifier"]
    assert sure["label"] == "setosa"
    assert outlier == {
        "label": None,
        "probabilities": None,
        "path": ["gate"],
        "gate_score": outlier["gate_score"],
    }
    assert outlier["gate_score"] < 0 < sure["gate_score"]
    assert unsure["path"] == ["gate", "classifier", "specialist"]
    assert (body["model_name"], body["model_version"]) == (
        "iris-chain",
        "iris-gate:1+iris:1+iris-specialist:1",
    )
    assert [(s["stage"], s["model"], s["rows"]) for s in body["stages"]] == [
        ("gate", "iris-gate:1", 3),
        ("classifier", "iris:1", 2),
        ("specialist", "iris-specialist:1", 1),
    ]
    assert all(s["ms"] > 0 for s in body["stages"])


def test_the_specialist_re_splits_the_pair_the_classifier_was_unsure_of(
    client: TestClient, models: dict[str, OnnxModel]
) -> None:
    row = np.array([BORDERLINE], np.float32)
    first = models["iris"].predict_proba(row)[0]
    second = models["iris-specialist"].predict_proba(row)[0]
    (prediction,) = client.post("/predict", json={"instances": [BORDERLINE]}).json()["predictions"]
    expected = {
        "setosa": first[0],
        "versicolor": (first[1] + first[2]) * second[0],
        "virginica": (first[1] + first[2]) * second[1],
    }
    assert prediction["probabilities"] == pytest.approx(expected, abs=1e-5)
    assert prediction["label"] == max(expected, key=expected.__getitem__)
    assert sum(prediction["probabilities"].values()) == pytest.approx(1, abs=1e-5)


def test_only_the_stages_needed_are_called(client: TestClient) -> None:
    only_outliers = client.post("/predict", json={"instances": [IN_MILLIMETRES]}).json()
    assert [s["stage"] for s in only_outliers["stages"]] == ["gate"]
    sure = client.post("/predict", json={"instances": [SETOSA, SETOSA]}).json()
    assert [s["stage"] for s in sure["stages"]] == ["gate", "classifier"]


def test_the_chain_is_described_and_bad_input_never_reaches_it(
    client: TestClient, predictor_server: PredictorProcess
) -> None:
    chain = client.get("/model").json()
    assert set(chain["models"]) == {"gate", "classifier", "specialist"}
    assert chain["models"]["gate"]["task"] == "anomaly"
    calls = predictor_server.infer_calls()  # every stage of this chain is that predictor
    change = MetricsChange(lambda: client.get("/metrics").text)
    answer = client.post("/predict", json={"instances": [[1, 2, 3]]})
    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == "instances[0]"
    assert predictor_server.infer_calls() == calls
    assert client.get("/health/ready").json() == {"status": "ready"}
    assert client.post("/predict", json={"instances": [SETOSA]}).status_code == 200
    assert predictor_server.infer_calls() == calls + 2  # gate, classifier: the count sees them
    assert change.increase("mlsp_outbound_duration_seconds_count", outcome="ok", peer="gate") == 1
    assert change.increase("mlsp_stage_duration_seconds_count", stage="gate_call") == 1


@pytest.mark.parametrize("case", bad_inputs(), ids=str)
def test_bad_input_gets_a_clear_error_and_no_stage_is_called(
    client: TestClient, predictor_server: PredictorProcess, case: BadInput
) -> None:
    calls = predictor_server.infer_calls()
    assert_refused(client.post("/predict", content=case.body), case)
    assert predictor_server.infer_calls() == calls
    assert client.post("/predict", json={"instances": [GOOD_ROW]}).status_code == 200


def test_a_stage_that_is_down_is_a_503_naming_it_only_when_a_row_needs_it(
    load_service: Callable[..., ModuleType], predictor_server: PredictorProcess
) -> None:
    up, down = predictor_server.grpc_target, f"127.0.0.1:{_free_port()}"
    service = load_service("serial", "api", **stage_urls(up, up, down))
    with TestClient(service.app) as client:
        assert client.post("/predict", json={"instances": [SETOSA]}).status_code == 200
        answer = client.post("/predict", json={"instances": [SETOSA, BORDERLINE]})
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "1"
        assert answer.json()["error"]["message"] == "specialist is unavailable; retry shortly"
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert list(ready.json()["checks"]) == ["specialist"]


def test_the_deadline_covers_the_whole_chain(
    load_service: Callable[..., ModuleType],
    predictor_server: PredictorProcess,
    slow_predictor: PredictorProcess,
) -> None:
    """Classifier and specialist take 0.3 s each: either fits 0.5 s, both do not."""
    fast, slow = predictor_server.grpc_target, slow_predictor.grpc_target
    service = load_service("serial", "api", REQUEST_TIMEOUT_S="0.5", **stage_urls(fast, slow, slow))
    with TestClient(service.app) as client:
        assert client.post("/predict", json={"instances": [SETOSA]}).status_code == 200
        answer = client.post("/predict", json={"instances": [BORDERLINE]})
        assert answer.status_code == 504
        message = answer.json()["error"]["message"]
        assert re.fullmatch(
            r"stage specialist did not answer within the request deadline "
            r"\(0\.5 s for the whole chain, 0\.\d+ s left for this stage\)",
            message,
        )


def test_a_gate_that_is_no_gate_or_a_specialist_of_other_classes_is_refused(
    load_service: Callable[..., ModuleType], model_repo: Path, tmp_path: Path
) -> None:
    urls = stage_urls("x:1", "x:1", "x:1")
    with (  # refused at start: the lifespan reads the stages' metadata
        pytest.raises(ModelError, match="gate model 'iris' does 'classification', not 'anomaly'"),
        TestClient(load_service("serial", "api", GATE_MODEL="iris", **urls).app),
    ):
        pass
    repo = shutil.copytree(model_repo, tmp_path / "models")
    metadata = repo / "iris-specialist" / "1" / METADATA_FILE
    metadata.write_bytes(
        orjson.dumps({**orjson.loads(metadata.read_bytes()), "labels": ["rose", "tulip"]})
    )
    service = load_service("serial", "api", GATE_MODEL="iris-gate", MODEL_DIR=str(repo), **urls)
    with (
        pytest.raises(ModelError, match=r"specialist's classes \['rose', 'tulip'\] are not all"),
        TestClient(service.app),
    ):
        pass


def test_generated_requests_get_no_server_error(client: TestClient) -> None:
    assert_no_server_errors(client)
