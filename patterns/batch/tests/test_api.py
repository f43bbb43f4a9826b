"""batch's api in-process on real PostgreSQL and Redis: rows in, runs, progress, answers."""

from collections.abc import Callable, Iterator
from types import ModuleType

import psycopg
import pytest
from fastapi.testclient import TestClient

from tests.api_fuzz import assert_no_server_errors
from tests.bad_input import GOOD_ROW, BadInput, assert_refused, bad_inputs
from tests.compose_stack import free_port
from tests.metrics_text import MetricsChange


@pytest.fixture
def client(
    job: ModuleType, load_service: Callable[..., ModuleType], batch_env: dict[str, str]
) -> Iterator[TestClient]:
    api = load_service("batch", "api", MAX_INSTANCES="6", MAX_BODY_BYTES="4096", **batch_env)
    with TestClient(api.app) as client:
        yield client


def count_rows(batch_env: dict[str, str]) -> int:
    with psycopg.connect(batch_env["DATABASE_URL"]) as connection:
        return connection.execute("SELECT count(*) FROM batch_inputs").fetchone()[0]


def test_rows_added_are_pending_then_predicted_by_a_run(
    client: TestClient, run_jobs: Callable[[], None]
) -> None:
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    added = client.post("/rows", json={"instances": [GOOD_ROW]})
    assert added.status_code == 202
    assert added.json() == {"ids": [1], "status": "pending"}
    by_name = {"instances": [dict(zip(names, [6.7, 3.0, 5.2, 2.3], strict=True))]}
    assert client.post("/rows", json=by_name).json()["ids"] == [2]
    pending = client.get("/rows/1").json()
    assert (pending["status"], pending["prediction"], pending["features"]) == (
        "pending", None, GOOD_ROW,
    )  # fmt: skip
    assert client.get("/progress").json()["pending"] == 2

    started = client.post("/runs")
    assert started.status_code == 202
    assert started.headers["location"] == started.json()["url"]
    assert client.get(started.json()["url"]).json()["status"] == "queued"
    waited = client.get(started.json()["url"], params={"wait_s": "0.05"})  # a long poll
    assert (waited.status_code, waited.json()["status"]) == (200, "queued")
    too_long = client.get(started.json()["url"], params={"wait_s": "3600"})
    assert (too_long.status_code, too_long.json()["error"]["field"]) == (422, "wait_s")
    run_jobs()
    run = client.get(started.json()["url"], params={"wait_s": "5"}).json()
    assert run["status"] == "finished"
    assert run["result"]["pending_at_start"] == 2

    done = client.get("/rows/2").json()
    assert done["status"] == "done"
    assert done["features"] == [6.7, 3.0, 5.2, 2.3]
    prediction = done["prediction"]
    assert (prediction["label"], prediction["model_name"], prediction["model_version"]) == (
        "virginica", "iris", "1",
    )  # fmt: skip
    assert prediction["run_id"] == run["job_id"]
    assert sum(prediction["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    progress = client.get("/progress").json()
    assert (progress["pending"], progress["done"], progress["failed"], progress["total"]) == (
        0, 2, 0, 2,
    )  # fmt: skip
    assert progress["runs"][0]["rows_done"] == 2
    assert progress["runs"][0]["finished_at"] is not None


BAD_ROWS = [
    *bad_inputs(max_instances=6, max_body_bytes=4096),
    BadInput("infinity", b'{"instances": [[5.1, 3.5, Infinity, 0.2]]}', "body", "not valid JSON"),
    BadInput("over float32", b'{"instances": [[5.1, 3.5, 1e39, 0.2]]}', "instances[0][2]", ""),
]


@pytest.mark.parametrize("case", BAD_ROWS, ids=str)
def test_bad_rows_are_refused_and_nothing_is_stored(
    client: TestClient, batch_env: dict[str, str], case: BadInput
) -> None:
    assert_refused(client.post("/rows", content=case.body), case)
    assert count_rows(batch_env) == 0
    assert client.post("/rows", json={"instances": [GOOD_ROW]}).status_code == 202


def test_unknown_rows_and_runs_are_404(client: TestClient) -> None:
    assert client.get("/rows/12345").status_code == 404
    assert client.get("/rows/12345").json()["error"]["field"] == "row_id"
    assert client.get("/rows/abc").status_code == 422
    assert client.get("/runs/" + "0" * 32).status_code == 404


def test_ready_metrics_and_docs(client: TestClient) -> None:
    assert client.get("/health/ready").json() == {"status": "ready"}
    change = MetricsChange(lambda: client.get("/metrics").text)
    client.post("/rows", json={"instances": [GOOD_ROW]})
    assert change.increase("mlsp_stage_duration_seconds_count", stage="insert") == 1
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/rows", "/rows/{row_id}", "/runs", "/runs/{job_id}", "/progress"} <= set(paths)


def test_a_down_database_means_503_and_not_ready(
    job: ModuleType, load_service: Callable[..., ModuleType], batch_env: dict[str, str]
) -> None:
    env = {**batch_env, "DATABASE_URL": f"postgresql://x@127.0.0.1:{free_port()}/x"}
    api = load_service("batch", "api", **env)
    with TestClient(api.app) as client:
        answer = client.post("/rows", json={"instances": [GOOD_ROW]})
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "2"
        assert client.get("/progress").status_code == 503
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert "postgres" in ready.json()["checks"]


def test_generated_requests_get_no_server_error(client: TestClient) -> None:
    assert_no_server_errors(client)
