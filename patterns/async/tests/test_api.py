"""async's api and worker in-process, on a real Redis: submit, poll, errors, callbacks."""

from collections.abc import Callable, Iterator
from types import ModuleType

import orjson
import pytest
import redis
from fastapi.testclient import TestClient
from rq import Queue

from shared.jobs import callbacks
from shared.jobs.worker import LiveWorker, WorkerSettings
from tests.api_fuzz import (
    FUZZ_API_KEY,
    assert_no_server_errors,
    assert_no_server_errors_with_a_key,
)
from tests.bad_input import GOOD_ROW, BadInput, assert_refused, bad_inputs
from tests.compose_stack import free_port
from tests.metrics_text import MetricsChange


@pytest.fixture
def api(load_service: Callable[..., ModuleType], redis_url: str) -> ModuleType:
    return load_service(
        "async", "api", REDIS_URL=redis_url, MAX_INSTANCES="6", MAX_BODY_BYTES="4096",
        CALLBACK_ALLOWED_HOSTS="callback-receiver", JOB_RETRIES="1", RESULT_TTL_S="60",
    )  # fmt: skip


@pytest.fixture
def client(api: ModuleType) -> Iterator[TestClient]:
    with TestClient(api.app) as client:  # runs the lifespan: reads the model's metadata
        yield client


@pytest.fixture
def work(load_service: Callable[..., ModuleType], redis_url: str) -> Callable[[], None]:
    """Runs the queued jobs with the real worker code (tasks.predict, the model loaded),
    those waiting together as one batch, as the worker process runs them."""
    worker_main = load_service("async", "worker", REDIS_URL=redis_url)
    worker_main.tasks.serve(worker_main.load_served_model(worker_main.Settings()))

    def run() -> None:
        LiveWorker(
            ["predict"],
            connection=redis.Redis.from_url(redis_url),
            name="unit",
            settings=WorkerSettings(),
            log_jobs=False,
            batch_functions={"tasks.predict": worker_main.tasks.predict_batch},
        ).work(burst=True)

    return run


def queued(redis_url: str) -> int:
    return Queue("predict", connection=redis.Redis.from_url(redis_url)).count


def test_submit_answers_202_with_where_to_poll(client: TestClient, redis_url: str) -> None:
    answer = client.post("/predict", json={"instances": [GOOD_ROW]})
    assert answer.status_code == 202
    body = answer.json()
    assert set(body) == {"job_id", "status", "url"}
    assert body["status"] == "queued"
    assert body["url"] == f"/jobs/{body['job_id']}"
    assert answer.headers["location"] == body["url"]
    assert queued(redis_url) == 1
    job = client.get(body["url"]).json()
    assert job == {
        "job_id": body["job_id"], "status": "queued", "result": None, "error": None,
        "enqueued_at": job["enqueued_at"], "ended_at": None,
    }  # fmt: skip


def test_the_finished_job_holds_web_singles_answer(
    client: TestClient, work: Callable[[], None]
) -> None:
    examples = client.get("/model").json()["examples"]
    url = client.post("/predict", json={"instances": [e["input"] for e in examples]}).json()["url"]
    work()
    job = client.get(url).json()
    assert job["status"] == "finished"
    assert job["error"] is None
    assert job["ended_at"] >= job["enqueued_at"]
    result = job["result"]
    assert (result["model_name"], result["model_version"]) == ("iris", "1")
    assert [p["label"] for p in result["predictions"]] == [e["label"] for e in examples]
    for prediction, example in zip(result["predictions"], examples, strict=True):
        assert list(prediction["probabilities"].values()) == pytest.approx(
            example["probabilities"], abs=1e-4
        )


def test_jobs_run_together_answer_as_each_would_alone(
    client: TestClient, work: Callable[[], None]
) -> None:
    examples = [e["input"] for e in client.get("/model").json()["examples"]]
    bodies = [examples[:1], examples, [examples[-1]] * 3, [GOOD_ROW]]
    urls = [client.post("/predict", json={"instances": rows}).json()["url"] for rows in bodies]
    work()  # all four waiting: one batch
    together = [client.get(url).json()["result"] for url in urls]
    urls = []
    for rows in bodies:
        urls.append(client.post("/predict", json={"instances": rows}).json()["url"])
        work()  # one job waiting: a batch of one
    assert together == [client.get(url).json()["result"] for url in urls]


def test_named_features_are_accepted(client: TestClient, work: Callable[[], None]) -> None:
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    by_name = {"instances": [dict(zip(names, GOOD_ROW, strict=True))]}
    url = client.post("/predict", json=by_name).json()["url"]
    work()
    assert client.get(url).json()["result"]["predictions"][0]["label"] == "setosa"


BAD_INPUTS = [
    *bad_inputs(max_instances=6, max_body_bytes=4096),
    BadInput(
        "callback elsewhere",
        orjson.dumps({"instances": [GOOD_ROW], "callback_url": "http://evil.example/"}),
        "callback_url",
        "is not allowed; allowed: ['callback-receiver']",
    ),
    BadInput(
        "callback not a URL",
        orjson.dumps({"instances": [GOOD_ROW], "callback_url": 3}),
        "callback_url",
        "",
    ),
]


@pytest.mark.parametrize("case", BAD_INPUTS, ids=str)
def test_bad_input_is_refused_at_once_and_queues_nothing(
    client: TestClient, redis_url: str, case: BadInput
) -> None:
    assert_refused(client.post("/predict", content=case.body), case)
    assert queued(redis_url) == 0
    assert client.post("/predict", json={"instances": [GOOD_ROW]}).status_code == 202


def test_a_callback_url_on_the_allow_list_is_kept_with_the_job(
    client: TestClient, redis_url: str
) -> None:
    url = "http://callback-receiver:8080/callbacks"
    answer = client.post("/predict", json={"instances": [GOOD_ROW], "callback_url": url})
    assert answer.status_code == 202
    job = Queue("predict", connection=redis.Redis.from_url(redis_url)).jobs[0]
    assert job.meta["callback_url"] == url
    assert job.success_callback is callbacks.on_success
    assert job.failure_callback is callbacks.on_failure
    assert job.retries_left == 1
    assert job.timeout == 30


def test_unknown_jobs_are_404(client: TestClient) -> None:
    for job_id in ("0" * 32, "nope", "a:b"):
        answer = client.get(f"/jobs/{job_id}")
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "not_found"


def test_request_id_travels_with_the_job(client: TestClient, redis_url: str) -> None:
    client.post("/predict", json={"instances": [GOOD_ROW]}, headers={"X-Request-ID": "trace-1"})
    job = Queue("predict", connection=redis.Redis.from_url(redis_url)).jobs[0]
    assert job.meta["request_id"] == "trace-1"
    assert job.description == "predict 1 rows"


def test_ready_metrics_and_docs(client: TestClient) -> None:
    assert client.get("/health/ready").json() == {"status": "ready"}
    change = MetricsChange(lambda: client.get("/metrics").text)
    client.post("/predict", json={"instances": [GOOD_ROW]})
    assert change.increase("mlsp_stage_duration_seconds_count", stage="enqueue") == 1
    predict = {"method": "POST", "route": "/predict", "status": "202"}
    assert change.increase("mlsp_http_requests_total", **predict) == 1
    spec = client.get("/openapi.json").json()
    schema = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert {"instances", "callback_url"} <= set(schema["schema"]["properties"])
    assert "/jobs/{job_id}" in spec["paths"]


def test_redis_down_means_503_and_not_ready(load_service: Callable[..., ModuleType]) -> None:
    api = load_service("async", "api", REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    with TestClient(api.app) as client:
        answer = client.post("/predict", json={"instances": [GOOD_ROW]})
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "2"
        assert answer.json()["error"]["code"] == "dependency_unavailable"
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert "redis" in ready.json()["checks"]


def test_generated_requests_get_no_server_error(client: TestClient) -> None:
    assert_no_server_errors(client)


def test_generated_requests_with_a_key_set_get_no_server_error(
    load_service: Callable[..., ModuleType],
    redis_url: str,
) -> None:
    service = load_service(
        "async", "api", REDIS_URL=redis_url, MAX_INSTANCES="6", API_KEYS=FUZZ_API_KEY
    )
    assert_no_server_errors_with_a_key(service.app)


def test_a_full_queue_refuses_submits_with_503_and_retry_after(
    load_service: Callable[..., ModuleType], redis_url: str
) -> None:
    api = load_service("async", "api", REDIS_URL=redis_url, MAX_QUEUED_JOBS="2")
    with TestClient(api.app) as client:
        for _ in range(2):
            assert client.post("/predict", json={"instances": [GOOD_ROW]}).status_code == 202
        refused = client.post("/predict", json={"instances": [GOOD_ROW]})
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "2"
        assert refused.json()["error"]["code"] == "queue_full"
        assert queued(redis_url) == 2
        assert 'mlsp_queue_depth{queue="predict"} 2.0' in client.get("/metrics").text
