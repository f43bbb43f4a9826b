"""parallel end to end: fan-out to three predictors, members paused and stopped under it."""

import time
from collections.abc import Iterator
from typing import Any

import pytest

from shared.jobs.contract import ENDED
from tests.bad_input import GOOD_ROW, BadInput, assert_refused_by_the_stack, bad_inputs
from tests.compose_stack import ComposeStack

pytestmark = pytest.mark.e2e

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.3, 2.8, 5.1, 1.5]]
MEMBERS = ["iris", "iris-forest", "iris-bayes"]
PREDICTORS = {"predictor-linear", "predictor-forest", "predictor-bayes"}


@pytest.fixture(scope="module")
def stack() -> Iterator[ComposeStack]:
    with ComposeStack("parallel", PREDICT_TIMEOUT_S="0.3", JOB_TIMEOUT_S="10") as stack:
        yield stack


def predict(stack: ComposeStack, **headers: str):
    return stack.post("/predict", json={"instances": ROWS}, headers=headers)


def answered(body: dict[str, Any]) -> list[str]:
    return [m["member"] for m in body["members"]["answered"]]


def all_answer(stack: ComposeStack) -> bool:
    """Every member is in the vote."""
    answer = predict(stack)
    return answer.status_code == 200 and answered(answer.json()) == MEMBERS


def test_only_the_api_is_published(stack: ComposeStack) -> None:
    lines = stack.compose("ps", "--format", "{{.Service}} {{.Health}} {{.Ports}}").splitlines()
    by_service = {line.split()[0]: line for line in lines if line}
    assert set(by_service) == {"api", "redis", *PREDICTORS}
    assert all("healthy" in line for line in by_service.values())
    assert f"127.0.0.1:{stack.port}->8080/tcp" in by_service["api"]
    assert not any("->" in by_service[name] for name in {"redis", *PREDICTORS})


def test_every_member_votes(stack: ComposeStack) -> None:
    answer = predict(stack)
    assert answer.status_code == 200
    body = answer.json()
    assert [p["label"] for p in body["predictions"]] == ["setosa", "versicolor"]
    assert answered(body) == MEMBERS
    assert body["members"]["left_out"] == []
    assert body["model_version"] == "iris:1+iris-forest:1+iris-bayes:1"


@pytest.mark.parametrize("path", ["/predict", "/jobs"])
@pytest.mark.parametrize("case", bad_inputs(), ids=str)
def test_bad_input_gets_a_clear_error_and_starts_no_work(
    stack: ComposeStack, path: str, case: BadInput
) -> None:
    assert_refused_by_the_stack(stack, path, case)
    good = stack.post(path, json={"instances": [GOOD_ROW]})
    assert good.status_code in (200, 202)
    if good.status_code == 202:  # the job's member calls end before the next test counts calls
        url = good.json()["url"]
        stack.wait_for(lambda: stack.get(url).json()["status"] in ENDED, "the good job", 15)
        assert stack.get(url).json()["status"] == "finished"


def test_the_request_id_reaches_every_member(stack: ComposeStack) -> None:
    assert predict(stack, **{"X-Request-ID": "parallel-e2e-5"}).status_code == 200
    for service in PREDICTORS:
        assert stack.traced(service, "parallel-e2e-5") == ["ModelInfer OK"], service


def test_a_paused_member_is_left_out_and_a_job_waits_for_it(stack: ComposeStack) -> None:
    with stack.paused("predictor-forest"):
        started = time.monotonic()
        answer = predict(stack)
        assert time.monotonic() - started < 2
        assert answer.status_code == 200
        body = answer.json()
        assert answered(body) == ["iris", "iris-bayes"]
        assert body["members"]["left_out"] == [
            {
                "member": "iris-forest",
                "code": "dependency_timeout",
                "message": "iris-forest did not answer within 0.3 s",
            }
        ]
        accepted = stack.post("/jobs", json={"instances": ROWS})
        assert accepted.status_code == 202
        url = accepted.json()["url"]
        time.sleep(0.5)
        job = stack.get(url).json()
        assert job["status"] == "started"
        partial = job["result"]
        assert partial["members"]["pending"] == ["iris-forest"]
        assert answered(partial) == ["iris", "iris-bayes"]
        assert len(partial["predictions"]) == 2
    stack.wait_for(lambda: stack.get(url).json()["status"] in ENDED, "a final job", 15)
    job = stack.get(url).json()
    assert job["status"] == "finished"
    assert sorted(answered(job["result"])) == sorted(MEMBERS)
    assert job["result"]["members"]["pending"] == []


def test_stopped_members_are_left_out_until_the_quorum_is_lost(stack: ComposeStack) -> None:
    with stack.stopped("predictor-bayes"):
        body = predict(stack).json()
        assert answered(body) == ["iris", "iris-forest"]
        (left_out,) = body["members"]["left_out"]
        assert (left_out["member"], left_out["code"]) == ("iris-bayes", "dependency_unavailable")
        assert stack.get("/health/ready").status_code == 200  # 2 of 3 is a quorum

        with stack.stopped("predictor-linear"):
            answer = predict(stack)
            assert answer.status_code == 503
            assert answer.headers["retry-after"] == "1"
            message = answer.json()["error"]["message"]
            assert message.startswith("only 1 of 3 members answered, quorum is 2; left out: ")
            assert "iris (dependency_unavailable)" in message
            assert "iris-bayes (dependency_unavailable)" in message
            assert stack.get("/health/ready").status_code == 503
    stack.wait_for(lambda: all_answer(stack), "every member answering")
    assert stack.get("/health/ready").status_code == 200


def test_a_stopped_redis_fails_jobs_not_predictions(stack: ComposeStack) -> None:
    with stack.stopped("redis"):
        answer = stack.post("/jobs", json={"instances": ROWS})
        assert answer.status_code == 503
        assert answer.json()["error"]["message"].startswith("storing the job: Redis is unavailable")
        assert predict(stack).status_code == 200
    stack.wait_for(lambda: stack.post("/jobs", json={"instances": ROWS}).status_code == 202, "jobs")


def test_locust_smoke_load_has_no_failures(stack: ComposeStack) -> None:
    rows = stack.locust_smoke()
    assert rows["Aggregated"]["failures"] == 0
    assert rows["POST /predict"]["requests"] > 0
    assert rows["POST /jobs"]["requests"] > 0  # the async half ran too


def test_readme_examples_answer_as_quoted(stack: ComposeStack) -> None:
    assert stack.readme_example_problems() == []
