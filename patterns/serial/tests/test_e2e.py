"""serial end to end: api -> gate -> classifier -> specialist; stages paused and stopped."""

import re
import time
from collections.abc import Iterator

import pytest

from tests.bad_input import GOOD_ROW, BadInput, assert_refused_by_the_stack, bad_inputs
from tests.compose_stack import ComposeStack
from tests.pattern_e2e import test_readme_examples, test_smoke_load  # noqa: F401 (run here)

pytestmark = pytest.mark.e2e

SETOSA = [5.1, 3.5, 1.4, 0.2]  # the classifier is sure: gate, classifier
BORDERLINE = [6.3, 2.8, 5.1, 1.5]  # the classifier is unsure: gate, classifier, specialist
REQUEST_TIMEOUT_S = 0.5  # the whole chain's deadline in the stack under test
PREDICTORS = {"predictor-gate", "predictor-classifier", "predictor-specialist"}


@pytest.fixture(scope="module")
def stack() -> Iterator[ComposeStack]:
    with ComposeStack("serial", REQUEST_TIMEOUT_S=str(REQUEST_TIMEOUT_S)) as stack:
        yield stack


def predict(stack: ComposeStack, *rows: list[float], **headers: str):
    return stack.post("/predict", json={"instances": list(rows)}, headers=headers)


def predicting(stack: ComposeStack) -> bool:
    """A row that needs every stage gets a 200."""
    return predict(stack, BORDERLINE).status_code == 200


def test_only_the_api_is_published_and_every_stage_has_its_container(stack: ComposeStack) -> None:
    lines = stack.compose("ps", "--format", "{{.Service}} {{.Health}} {{.Ports}}").splitlines()
    by_service = {line.split()[0]: line for line in lines if line}
    assert set(by_service) == {"api", *PREDICTORS}
    assert all("healthy" in line for line in by_service.values())
    assert f"127.0.0.1:{stack.port}->8080/tcp" in by_service["api"]
    assert not any("->" in by_service[name] for name in PREDICTORS)
    assert stack.compose("exec", "-T", "predictor-gate", "id", "-u").strip() == "10001"


def test_outliers_stop_at_the_gate_and_the_rest_go_on(stack: ComposeStack) -> None:
    examples = stack.get("/model").json()["models"]["gate"]["examples"]
    answer = predict(stack, *(e["input"] for e in examples))
    assert answer.status_code == 200
    body = answer.json()
    for example, prediction in zip(examples, body["predictions"], strict=True):
        if example["label"] == "outlier":
            assert prediction["path"] == ["gate"]
            assert prediction["label"] is None
            assert prediction["gate_score"] < 0
        else:
            assert prediction["path"][:2] == ["gate", "classifier"]
            assert prediction["label"] in {"setosa", "versicolor", "virginica"}
    assert body["model_version"] == "iris-gate:1+iris:1+iris-specialist:1"
    assert [s["stage"] for s in body["stages"]][:2] == ["gate", "classifier"]


def test_each_row_shows_its_path_and_each_stage_its_time(stack: ComposeStack) -> None:
    body = predict(stack, SETOSA, BORDERLINE).json()
    assert [p["path"] for p in body["predictions"]] == [
        ["gate", "classifier"],
        ["gate", "classifier", "specialist"],
    ]
    assert [(s["stage"], s["rows"]) for s in body["stages"]] == [
        ("gate", 2),
        ("classifier", 2),
        ("specialist", 1),
    ]
    assert all(s["ms"] > 0 for s in body["stages"])


@pytest.mark.parametrize("case", bad_inputs(), ids=str)
def test_bad_input_gets_a_clear_error_and_no_stage_is_called(
    stack: ComposeStack, case: BadInput
) -> None:
    assert_refused_by_the_stack(stack, "/predict", case)
    assert stack.post("/predict", json={"instances": [GOOD_ROW]}).status_code == 200


def test_the_request_id_travels_along_the_chain(stack: ComposeStack) -> None:
    assert predict(stack, BORDERLINE, **{"X-Request-ID": "serial-e2e-3"}).status_code == 200
    for service in PREDICTORS:
        assert stack.traced(service, "serial-e2e-3") == ["ModelInfer OK"], service


def test_a_slow_stage_is_a_504_naming_it_within_the_chains_deadline(stack: ComposeStack) -> None:
    with stack.paused("predictor-specialist"):
        assert predict(stack, SETOSA).status_code == 200  # needs no specialist
        started = time.monotonic()
        answer = predict(stack, BORDERLINE)
        assert time.monotonic() - started < 5 * REQUEST_TIMEOUT_S  # the chain's deadline, 5x
        assert answer.status_code == 504
        assert re.fullmatch(
            r"stage specialist did not answer within the request deadline "
            r"\(0\.5 s for the whole chain, 0\.\d+ s left for this stage\)",
            answer.json()["error"]["message"],
        )
    stack.wait_for(lambda: predicting(stack), "every stage answering", timeout_s=10)


def test_a_stopped_stage_is_a_503_naming_it_and_the_api_recovers(stack: ComposeStack) -> None:
    with stack.stopped("predictor-gate"):
        answer = predict(stack, SETOSA)
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "1"
        assert answer.json()["error"]["message"] == "gate is unavailable; retry shortly"
        ready = stack.get("/health/ready")
        assert ready.status_code == 503
        assert list(ready.json()["checks"]) == ["gate"]
    stack.wait_for(lambda: predicting(stack), "every stage answering")
    assert stack.get("/health/ready").status_code == 200
