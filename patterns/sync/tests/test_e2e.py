"""sync end to end: api -> predictor over gRPC (and over REST), the predictor stopped and
paused under it."""

import time
from collections.abc import Iterator

import pytest

from tests.compose_stack import ComposeStack
from tests.pattern_e2e import test_readme_examples, test_smoke_load  # noqa: F401 (run here)

pytestmark = pytest.mark.e2e

ROW = [5.1, 3.5, 1.4, 0.2]


PREDICTOR_URLS = {"grpc": "predictor:8081", "rest": "http://predictor:8080"}
# The predictor's access log line for one inference, by protocol.
# The api names no version: each predictor answers with its own (MODEL_VERSION there).
INFER_LOG = {"grpc": "ModelInfer OK", "rest": "POST /v2/models/iris/infer 200"}


@pytest.fixture(scope="module", params=sorted(PREDICTOR_URLS))
def protocol(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def stack(protocol: str) -> Iterator[ComposeStack]:
    url = PREDICTOR_URLS[protocol]
    with ComposeStack("sync", PREDICTOR_TIMEOUT_S="0.5", PREDICTOR_URL=url) as stack:
        yield stack


def predict(stack: ComposeStack, **headers: str):
    return stack.post("/predict", json={"instances": [ROW]}, headers=headers)


def wait_until_predicting(stack: ComposeStack, timeout_s: float = 30) -> float:
    """Seconds until /predict answers 200 again."""
    started = time.monotonic()
    while predict(stack).status_code != 200:
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"no 200 within {timeout_s} s")
        time.sleep(0.2)
    return time.monotonic() - started


def test_only_the_api_is_published(stack: ComposeStack) -> None:
    health = stack.compose("ps", "--format", "{{.Service}} {{.Health}} {{.Ports}}").splitlines()
    by_service = {line.split()[0]: line for line in health if line}
    assert set(by_service) == {"api", "predictor"}
    assert "healthy" in by_service["api"]
    assert "healthy" in by_service["predictor"]
    assert f"127.0.0.1:{stack.port}->8080/tcp" in by_service["api"]
    assert "->" not in by_service["predictor"]


def test_predictions_match_the_models_known_answers(stack: ComposeStack) -> None:
    examples = stack.get("/model").json()["examples"]
    answer = stack.post("/predict", json={"instances": [e["input"] for e in examples]})
    assert answer.status_code == 200
    assert [p["label"] for p in answer.json()["predictions"]] == [e["label"] for e in examples]


def test_bad_input_gets_422_from_the_api(stack: ComposeStack) -> None:
    answer = stack.post("/predict", json={"instances": [[5.1, "x", 1.4, 0.2]]})
    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == "instances[0][1]"


def test_the_request_id_travels_to_the_predictor(stack: ComposeStack, protocol: str) -> None:
    assert predict(stack, **{"X-Request-ID": "sync-e2e-7"}).status_code == 200
    assert stack.traced("api", "sync-e2e-7") == ["POST /predict 200"]
    assert stack.traced("predictor", "sync-e2e-7") == [INFER_LOG[protocol]]


def test_a_slow_predictor_gives_504_and_recovers(stack: ComposeStack) -> None:
    stack.compose("pause", "predictor")
    try:
        answer = predict(stack)
        assert answer.status_code == 504
        assert answer.json()["error"]["message"] == "predictor did not answer within 0.5 s"
    finally:
        stack.compose("unpause", "predictor")
    assert wait_until_predicting(stack) < 10


def api_health(stack: ComposeStack) -> str:
    """The api container's healthcheck status: healthy, unhealthy or starting."""
    return stack.compose("ps", "--format", "{{.Health}}", "api").strip()


def test_a_stopped_predictor_gives_503_and_the_api_recovers_by_itself(stack: ComposeStack) -> None:
    stack.compose("stop", "predictor")
    try:
        answer = predict(stack)
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "1"
        assert answer.json()["error"]["code"] == "dependency_unavailable"
        assert stack.get("/health/ready").status_code == 503
        # The healthcheck (compose/probe.sh) reports the unready api as unhealthy.
        stack.wait_for(lambda: api_health(stack) == "unhealthy", "the api to turn unhealthy")
    finally:
        stack.compose("start", "predictor")
    assert wait_until_predicting(stack) < 30
    assert stack.get("/health/ready").status_code == 200
    stack.wait_for(lambda: api_health(stack) == "healthy", "the api to turn healthy again")
