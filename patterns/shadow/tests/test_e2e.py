"""shadow end to end: the primary answers, the candidate's answers are recorded, and a stopped
or slow candidate fails no request."""

from collections.abc import Iterator

import pytest

from tests.chaos import Fault, fault_under_load
from tests.compose_config import compose_config
from tests.compose_stack import ComposeStack
from tests.metrics_text import MetricsChange
from tests.pattern_e2e import test_readme_examples, test_smoke_load  # noqa: F401 (run here)

pytestmark = pytest.mark.e2e

ROW = [5.1, 3.5, 1.4, 0.2]


@pytest.fixture(scope="module")
def stack() -> Iterator[ComposeStack]:
    with ComposeStack("shadow", CANDIDATE_TIMEOUT_S="0.5", ACCESS_LOG="true") as stack:
        yield stack


def metrics(stack: ComposeStack) -> MetricsChange:
    return MetricsChange(lambda: stack.get("/metrics").text)


def failed_answers(stack: ComposeStack) -> list[dict[str, object]]:
    """The api's access log lines of answers other than 200 (to say why a request failed)."""
    return [line for line in stack.log_lines("api") if line.get("status", 200) != 200][:5]


def test_only_the_api_is_published(stack: ComposeStack) -> None:
    health = stack.compose("ps", "--format", "{{.Service}} {{.Health}} {{.Ports}}").splitlines()
    by_service = {line.split()[0]: line for line in health if line}
    assert set(by_service) == {"api", "predictor", "candidate"}
    for service in by_service.values():
        assert "healthy" in service
    assert f"127.0.0.1:{stack.port}->8080/tcp" in by_service["api"]
    assert "->" not in by_service["predictor"] + by_service["candidate"]


def test_answers_are_the_primarys_and_the_candidates_are_recorded(stack: ComposeStack) -> None:
    examples = stack.get("/model").json()["examples"]
    change = metrics(stack)
    answer = stack.post("/predict", json={"instances": [e["input"] for e in examples]})
    assert answer.status_code == 200
    body = answer.json()
    assert [p["label"] for p in body["predictions"]] == [e["label"] for e in examples]
    assert [p["probabilities"] for p in body["predictions"]] == [
        dict(zip(stack.get("/model").json()["labels"], e["probabilities"], strict=True))
        for e in examples
    ]  # the primary's (iris v1's) own answers, not the candidate's
    assert (body["model_name"], body["model_version"]) == ("iris", "1")
    rows = change.wait_for_increase("mlsp_shadow_rows_total", len(examples))
    assert rows == len(examples)
    assert change.increase("mlsp_mirror_calls_total", mirror="candidate", outcome="ok") == 1
    assert change.increase("mlsp_shadow_latency_seconds_count", model="candidate") == 1
    state = stack.get("/shadow").json()
    assert state["primary"] == "iris:1"
    candidate = compose_config("shadow")["services"]["api"]["environment"]["CANDIDATE_MODEL"]
    assert state["candidate"].partition(":")[0] == candidate  # the compose file's choice


def test_the_request_id_travels_to_both_predictors(stack: ComposeStack) -> None:
    answer = stack.post("/predict", json={"instances": [ROW]}, headers={"X-Request-ID": "shadow-7"})
    assert answer.status_code == 200
    assert stack.traced("api", "shadow-7") == ["POST /predict 200"]
    assert stack.traced("predictor", "shadow-7") == ["ModelInfer OK"]
    assert stack.traced("candidate", "shadow-7") == ["ModelInfer OK"]


def test_a_stopped_candidate_fails_no_request(stack: ComposeStack) -> None:
    change = metrics(stack)
    result = fault_under_load(stack, Fault("candidate"))
    assert result.requests > 0
    assert result.failed == 0, (result.failures, failed_answers(stack))
    assert result.problems() == []
    assert change.increase("mlsp_mirror_calls_total", mirror="candidate", outcome="failed") > 0
    assert stack.get("/health/ready").status_code == 200


def test_a_slow_candidate_fails_no_request(stack: ComposeStack) -> None:
    # Slower than the mirror's deadline (CANDIDATE_TIMEOUT_S=0.5; tests.chaos.SLOWED: 2 s):
    # every mirror times out.
    change = metrics(stack)
    result = fault_under_load(stack, Fault("candidate", "slow"))
    assert result.requests > 0
    assert result.failed == 0, (result.failures, failed_answers(stack))
    assert result.problems() == []
    assert change.increase("mlsp_mirror_calls_total", mirror="candidate", outcome="timeout") > 0
