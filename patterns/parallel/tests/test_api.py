"""parallel's api in-process, against real predictor processes and a real Redis."""

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient

from conftest import PredictorProcess, _free_port, running_predictor
from shared.model.metadata import ModelError
from shared.serving.model import OnnxModel
from tests.api_fuzz import assert_no_server_errors
from tests.bad_input import GOOD_ROW, BadInput, assert_refused, bad_inputs

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.3, 2.8, 5.1, 1.5], [6.7, 3.0, 5.2, 2.3]]
MEMBERS = ("iris", "iris-forest", "iris-bayes")


@pytest.fixture
def start(
    load_service: Callable[..., ModuleType], predictor_server: PredictorProcess, redis_url: str
) -> Iterator[Callable[..., TestClient]]:
    """Start the api with the members on the given predictors (default: the shared one)."""
    clients: list[TestClient] = []

    def start_api(targets: dict[str, str] | None = None, **env: str) -> TestClient:
        where = {m: predictor_server.grpc_target for m in MEMBERS} | (targets or {})
        urls = ",".join(f"{member}={target}" for member, target in where.items())
        env = {"REDIS_URL": redis_url, "PREDICTOR_URLS": urls, **env}
        client = TestClient(load_service("parallel", "api", **env).app)
        clients.append(client.__enter__())
        return client

    yield start_api
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture(scope="module")
def very_slow_predictor(model_repo: Path) -> Iterator[PredictorProcess]:
    """A predictor whose ModelInfer takes 3 s: well past every deadline these tests set
    (1.5 s), which are themselves far past what a healthy member needs, even on a
    loaded machine (a 0.5 s deadline saw a healthy member left out under load)."""
    with running_predictor(model_repo, DELAY_MS="3000") as predictor:
        yield predictor


def soft_vote(model_repo: Path, *names: str) -> np.ndarray:
    rows = np.array(ROWS, dtype=np.float32)
    return np.mean([OnnxModel.load(model_repo, n).predict_proba(rows) for n in names], axis=0)


def probabilities(body: dict[str, Any]) -> np.ndarray:
    return np.array([list(p["probabilities"].values()) for p in body["predictions"]])


def wait_for_job(client: TestClient, url: str, timeout_s: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while (body := client.get(url).json())["status"] not in ("finished", "failed"):
        assert time.monotonic() < deadline, body
        time.sleep(0.05)
    return body


def test_every_member_answers_and_the_vote_is_their_mean(
    start: Callable[..., TestClient], model_repo: Path
) -> None:
    answer = start().post("/predict", json={"instances": ROWS})
    assert answer.status_code == 200
    body = answer.json()
    np.testing.assert_allclose(probabilities(body), soft_vote(model_repo, *MEMBERS), atol=1e-5)
    assert [p["label"] for p in body["predictions"]] == ["setosa", "versicolor", "virginica"]
    assert (body["model_name"], body["model_version"]) == (
        "iris-ensemble",
        "iris:1+iris-forest:1+iris-bayes:1",
    )
    assert [m["member"] for m in body["members"]["answered"]] == list(MEMBERS)
    assert all(m["ms"] > 0 for m in body["members"]["answered"])
    assert body["members"]["left_out"] == []


def test_a_member_past_the_deadline_is_left_out_and_named(
    start: Callable[..., TestClient], very_slow_predictor: PredictorProcess, model_repo: Path
) -> None:
    client = start({"iris-bayes": very_slow_predictor.grpc_target}, PREDICT_TIMEOUT_S="1.5")
    body = client.post("/predict", json={"instances": ROWS}).json()
    assert body["members"]["left_out"] == [  # answered at the deadline, not the slow member
        {
            "member": "iris-bayes",
            "code": "dependency_timeout",
            "message": "iris-bayes did not answer within 1.5 s",
        }
    ]
    assert [m["member"] for m in body["members"]["answered"]] == ["iris", "iris-forest"]
    np.testing.assert_allclose(
        probabilities(body), soft_vote(model_repo, "iris", "iris-forest"), atol=1e-5
    )


@pytest.mark.parametrize("path", ["/predict", "/jobs"])
@pytest.mark.parametrize("case", bad_inputs(), ids=str)
def test_bad_input_gets_a_clear_error_and_starts_no_work(
    start: Callable[..., TestClient],
    predictor_server: PredictorProcess,
    redis_url: str,
    path: str,
    case: BadInput,
) -> None:
    client = start()
    calls = predictor_server.infer_calls()
    store = redis.Redis.from_url(redis_url)
    assert_refused(client.post(path, content=case.body), case)
    assert predictor_server.infer_calls() == calls
    assert store.dbsize() == 0  # no job stored
    assert client.post(path, json={"instances": [GOOD_ROW]}).status_code in (200, 202)


def test_a_member_that_is_down_is_left_out_and_the_api_stays_ready(
    start: Callable[..., TestClient],
) -> None:
    client = start({"iris-forest": f"127.0.0.1:{_free_port()}"})
    body = client.post("/predict", json={"instances": ROWS}).json()
    (left_out,) = body["members"]["left_out"]
    assert (left_out["member"], left_out["code"]) == ("iris-forest", "dependency_unavailable")
    assert client.get("/health/ready").json() == {"status": "ready"}  # 2 of 3: a quorum


def test_below_quorum_is_503_naming_the_members_left_out(
    start: Callable[..., TestClient],
) -> None:
    client = start({"iris-forest": f"127.0.0.1:{_free_port()}"}, QUORUM="3")
    answer = client.post("/predict", json={"instances": ROWS})
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "1"
    assert answer.json()["error"]["message"] == (
        "only 2 of 3 members answered, quorum is 3; left out: iris-forest (dependency_unavailable)"
    )
    ready = client.get("/health/ready")
    assert ready.status_code == 503
    reason = ready.json()["checks"]["members"]
    assert "fewer than 3 members ready: iris-forest at 127.0.0.1:" in reason


def test_below_quorum_by_slowness_only_is_504(
    start: Callable[..., TestClient], very_slow_predictor: PredictorProcess
) -> None:
    slow = very_slow_predictor.grpc_target
    client = start({"iris-forest": slow, "iris-bayes": slow}, PREDICT_TIMEOUT_S="1.5")
    answer = client.post("/predict", json={"instances": ROWS})
    assert answer.status_code == 504
    assert answer.json()["error"]["message"].endswith(
        "left out: iris-forest (dependency_timeout), iris-bayes (dependency_timeout)"
    )


def test_a_job_answers_at_once_and_ends_with_the_same_vote(
    start: Callable[..., TestClient],
) -> None:
    client = start()
    accepted = client.post("/jobs", json={"instances": ROWS})
    assert accepted.status_code == 202
    job = accepted.json()
    assert (
        job["status"] == "queued"
    )  # the one job contract (shared.jobs.contract), as async answers
    assert accepted.headers["location"] == job["url"] == f"/jobs/{job['job_id']}"
    final = wait_for_job(client, job["url"])
    assert final["status"] == "finished"
    assert final["error"] is None
    assert final["ended_at"] >= final["enqueued_at"]
    vote = final["result"]
    assert vote["members"]["pending"] == []
    sync = client.post("/predict", json={"instances": ROWS}).json()
    assert vote["predictions"] == sync["predictions"]
    assert [m["member"] for m in vote["members"]["answered"]] == list(MEMBERS)


def test_a_job_shows_the_partial_vote_while_a_member_is_pending(
    start: Callable[..., TestClient], very_slow_predictor: PredictorProcess, model_repo: Path
) -> None:
    client = start({"iris-bayes": very_slow_predictor.grpc_target})
    url = client.post("/jobs", json={"instances": ROWS}).json()["url"]
    deadline = time.monotonic() + 2.5  # the slow member answers after 3 s
    while len((job := client.get(url).json())["result"]["members"]["answered"]) < 2:
        assert time.monotonic() < deadline, job
        time.sleep(0.02)
    assert (job["status"], job["ended_at"]) == ("started", None)
    partial = job["result"]
    assert partial["members"]["pending"] == ["iris-bayes"]
    np.testing.assert_allclose(
        probabilities(partial), soft_vote(model_repo, "iris", "iris-forest"), atol=1e-5
    )
    final = wait_for_job(client, url)
    assert final["status"] == "finished"
    np.testing.assert_allclose(
        probabilities(final["result"]), soft_vote(model_repo, *MEMBERS), atol=1e-5
    )


def test_a_job_below_quorum_fails_and_says_why(
    start: Callable[..., TestClient], very_slow_predictor: PredictorProcess
) -> None:
    client = start({"iris-bayes": very_slow_predictor.grpc_target}, QUORUM="3", JOB_TIMEOUT_S="1.5")
    final = wait_for_job(client, client.post("/jobs", json={"instances": ROWS}).json()["url"])
    assert final["status"] == "failed"
    assert final["error"]["code"] == "dependency_timeout"
    assert final["result"]["members"]["left_out"][0]["member"] == "iris-bayes"
    assert len(final["result"]["predictions"]) == 3  # the vote of the two that answered, kept


def test_unknown_jobs_are_404(start: Callable[..., TestClient]) -> None:
    client = start()
    for job_id in ("0" * 32, "not-an-id"):
        answer = client.get(f"/jobs/{job_id}")
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "not_found"


def test_redis_down_fails_jobs_not_predictions(start: Callable[..., TestClient]) -> None:
    client = start(REDIS_URL=f"redis://127.0.0.1:{_free_port()}/0")
    answer = client.post("/jobs", json={"instances": ROWS})
    assert answer.status_code == 503
    assert answer.json()["error"]["message"].startswith("storing the job: Redis is unavailable")
    assert client.post("/predict", json={"instances": ROWS}).status_code == 200
    assert "redis" in client.get("/health/ready").json()["checks"]


def test_openapi_documents_both_ways(start: Callable[..., TestClient]) -> None:
    paths = start().get("/openapi.json").json()["paths"]
    assert "200" in paths["/predict"]["post"]["responses"]
    assert "202" in paths["/jobs"]["post"]["responses"]
    assert "404" in paths["/jobs/{job_id}"]["get"]["responses"]


@pytest.mark.parametrize(
    ("env", "error", "says"),
    [
        ({"PREDICTOR_URLS": "iris=a:1,iris-forest"}, ValueError, "'iris-forest' is not model="),
        ({"QUORUM": "3"}, ValueError, "QUORUM=3 but there are only 2 members"),
        ({"PREDICTOR_URLS": "iris=a:1,iris-specialist=b:1"}, ModelError, "has classes"),
    ],
)
def test_settings_that_cannot_work_are_refused(
    load_service: Callable[..., ModuleType],
    env: dict[str, str],
    error: type[Exception],
    says: str,
) -> None:
    env = {"REDIS_URL": "redis://x:1/0", "PREDICTOR_URLS": "iris=a:1,iris-bayes=c:1"} | env
    with (  # at import (the settings) or at start (the lifespan)
        pytest.raises(error, match=says),
        TestClient(load_service("parallel", "api", **env).app),
    ):
        pass


def test_generated_requests_get_no_server_error(start: Callable[..., TestClient]) -> None:
    assert_no_server_errors(start())
