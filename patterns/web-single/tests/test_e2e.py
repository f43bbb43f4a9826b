"""web-single end to end: the real stack from docker compose, talked to over HTTP."""

from collections.abc import Iterator

import httpx
import orjson
import pytest

from tests.compose_stack import ComposeStack
from tests.docs_pages import docs_asset_problems

pytestmark = pytest.mark.e2e

GOOD_ROW = [5.1, 3.5, 1.4, 0.2]


@pytest.fixture(scope="module")
def stack() -> Iterator[ComposeStack]:
    with ComposeStack("web-single", MAX_INSTANCES="100") as stack:
        yield stack


def test_only_the_api_is_running_and_it_is_healthy_as_non_root(stack: ComposeStack) -> None:
    running = stack.compose("ps", "--format", "{{.Service}} {{.Health}}").split("\n")
    assert [line for line in running if line] == ["api healthy"]
    assert stack.compose("exec", "-T", "api", "id", "-u").strip() == "10001"
    published = stack.compose("port", "api", "8080").strip()
    assert published == f"127.0.0.1:{stack.port}"


def test_predictions_match_the_models_known_answers(stack: ComposeStack) -> None:
    examples = stack.get("/model").json()["examples"]
    answer = stack.post("/predict", json={"instances": [e["input"] for e in examples]})
    assert answer.status_code == 200
    body = answer.json()
    assert (body["model_name"], body["model_version"]) == ("iris", "1")
    assert [p["label"] for p in body["predictions"]] == [e["label"] for e in examples]
    assert [p["label"] for p in body["predictions"]] == [e["true_label"] for e in examples]
    for prediction, example in zip(body["predictions"], examples, strict=True):
        assert list(prediction["probabilities"].values()) == pytest.approx(
            example["probabilities"], abs=1e-4
        )


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"instances": [[5.1, 3.5, 1.4]]}, "instances[0]", "has 3 values; the model takes 4"),
        ({"instances": [[5.1, "wide", 1.4, 0.2]]}, "instances[0][1]", 'got "wide"'),
        (b'{"instances": [[5.1, 3.5, NaN, 0.2]]}', "body", "not valid JSON"),
        ({"instances": [[5.1, 3.5, None, 0.2]]}, "instances[0][2]", "got null"),
        ({"instances": []}, "instances", "at least one row"),
        ({"instances": [GOOD_ROW] * 101}, "instances", "holds 101 rows; at most 100"),
        ({"rows": [GOOD_ROW]}, "instances", '"instances" list'),
    ],
)
def test_bad_input_gets_422_naming_the_field(
    stack: ComposeStack, body: object, field: str, says: str
) -> None:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    answer = stack.post("/predict", content=content, headers={"Content-Type": "application/json"})
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["field"] == field
    assert says in error["message"]
    assert error["request_id"] == answer.headers["x-request-id"]


def test_oversized_body_gets_413_and_the_service_keeps_serving(stack: ComposeStack) -> None:
    big = b'{"instances": [' + b"[5.1, 3.5, 1.4, 0.2]," * 60_000 + b"[5.1, 3.5, 1.4, 0.2]]}"
    assert stack.post("/predict", content=big).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies as it streams
        yield big[:700_000]
        yield big[700_000:]

    streamed = stack.post("/predict", content=chunks())
    assert streamed.status_code == 413
    assert stack.post("/predict", json={"instances": [GOOD_ROW]}).status_code == 200


def test_readiness_metrics_and_request_id_in_the_logs(stack: ComposeStack) -> None:
    assert stack.get("/health/live").json() == {"status": "alive"}
    assert stack.get("/health/ready").json() == {"status": "ready"}
    stack.post("/predict", json={"instances": [GOOD_ROW]}, headers={"X-Request-ID": "e2e-trace-1"})
    metrics = stack.get("/metrics").text
    assert 'mlsp_model_info{model="iris",version="1"} 1.0' in metrics
    assert 'mlsp_http_requests_total{method="POST",route="/predict",status="200"}' in metrics
    assert 'mlsp_http_requests_total{method="POST",route="/predict",status="422"}' in metrics
    assert 'mlsp_stage_duration_seconds_count{stage="inference"}' in metrics
    assert stack.traced("api", "e2e-trace-1") == ["POST /predict 200"]


def test_docs_are_served(stack: ComposeStack) -> None:
    assert stack.get("/docs").status_code == 200
    assert "/predict" in stack.get("/openapi.json").json()["paths"]


def test_locust_smoke_load_has_no_failures(stack: ComposeStack) -> None:
    total = stack.locust_smoke()["Aggregated"]
    assert total["requests"] > 100
    assert total["failures"] == 0


def test_a_model_that_does_not_match_its_metadata_is_refused(stack: ComposeStack) -> None:
    """The api checks the model at start: a tampered file keeps it from starting."""
    tamper = "printf '\\0' >> /models/iris/1/model.onnx"
    stack.compose(
        "run", "--rm", "--no-deps", "--entrypoint", "sh", "model-export", "-c", tamper,
    )  # fmt: skip
    try:
        stack.compose("restart", "api")
        refusal = stack.wait_for_log("api", "refusing to start")
        assert "sha256" in refusal["msg"]
        assert "metadata says" in refusal["msg"]
        assert refusal["level"] == "CRITICAL"
        with pytest.raises(httpx.TransportError):
            stack.http.get("/health/ready", timeout=2)
    finally:
        stack.compose("run", "--rm", "--no-deps", "model-export")  # export again
        stack.compose("restart", "api")
        stack.wait_ready()
    assert stack.post("/predict", json={"instances": [GOOD_ROW]}).status_code == 200


def test_docs_and_their_assets_answer_from_the_container(stack: ComposeStack) -> None:
    assert docs_asset_problems(stack.get) == []
