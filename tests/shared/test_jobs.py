"""Jobs as clients see them: status, result, one-line errors, expiry, the 202 answer."""

import time

import orjson
import pytest
import redis
from fastapi.testclient import TestClient
from redis import asyncio as aioredis
from rq import Queue
from rq.job import JobStatus

from shared.jobs.async_queue import JobQueue
from shared.jobs.contract import (
    accepted,
    add_job_route,
    error_from_traceback,
    fetch_job,
    job_view,
    public_status,
)
from shared.jobs.worker import LiveWorker, WorkerSettings
from shared.kit.app import create_app
from shared.kit.errors import NotFound
from shared.kit.settings import ServiceSettings
from tests.metrics_text import MetricsChange


def run_burst(client: redis.Redis, queue_name: str = "test") -> None:
    """Run every queued job of ``queue_name`` in this process."""
    LiveWorker(
        [queue_name], connection=client, name="burst", settings=WorkerSettings(), log_jobs=False
    ).work(burst=True)


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


def test_a_job_is_queued_then_finished_with_its_result(client: redis.Redis) -> None:
    job = Queue("test", connection=client).enqueue("tests.shared.jobfuncs.add", 2, 3)
    queued = job_view(fetch_job(client, job.id))
    assert queued["status"] == "queued"
    assert queued["result"] is None
    assert queued["error"] is None
    assert queued["enqueued_at"].endswith("Z")
    assert queued["ended_at"] is None
    run_burst(client)
    finished = job_view(fetch_job(client, job.id))
    assert finished["status"] == "finished"
    assert finished["result"] == 5
    assert finished["error"] is None
    assert finished["ended_at"] >= finished["enqueued_at"]


def test_a_failed_job_says_why_in_one_line(client: redis.Redis) -> None:
    job = Queue("test", connection=client).enqueue("tests.shared.jobfuncs.explode", "no luck")
    run_burst(client)
    view = job_view(fetch_job(client, job.id))
    assert view["status"] == "failed"
    assert view["result"] is None
    assert view["error"] == {"code": "job_error", "message": "ValueError: no luck"}


def test_a_job_over_its_timeout_fails_with_code_timeout(client: redis.Redis) -> None:
    queue = Queue("test", connection=client)
    job = queue.enqueue("tests.shared.jobfuncs.sleep_then_add", 3, 1, 1, job_timeout=1)
    run_burst(client)
    error = job_view(fetch_job(client, job.id))["error"]
    assert error["code"] == "timeout"
    assert "1 second" in error["message"]
    assert "Traceback" not in error["message"]


def test_results_expire_after_their_ttl(client: redis.Redis) -> None:
    job = Queue("test", connection=client).enqueue("tests.shared.jobfuncs.add", 1, 1, result_ttl=3)
    run_burst(client)
    assert job_view(fetch_job(client, job.id))["result"] == 2
    time.sleep(3.5)
    with pytest.raises(NotFound, match="never submitted, or its result expired"):
        fetch_job(client, job.id)


@pytest.mark.parametrize("job_id", ["0" * 32, "not a job", "a:b", "x" * 65, ""])
def test_unknown_or_malformed_ids_are_not_found(client: redis.Redis, job_id: str) -> None:
    with pytest.raises(NotFound):
        fetch_job(client, job_id)


@pytest.mark.parametrize(
    ("exc_string", "code"),
    [
        ("Moved to FailedJobRegistry, due to AbandonedJobError, at 2026-01-01", "worker_lost"),
        ("Work-horse terminated unexpectedly; waitpid returned 9", "worker_lost"),
        ("Job was stuck in intermediate queue.", "worker_lost"),
        (
            "Traceback (most recent call last):\n  File x\n"
            "rq.timeouts.JobTimeoutException: Task exceeded maximum timeout value (5 seconds)",
            "timeout",
        ),
        ("Traceback (most recent call last):\n  File x\nKeyError: 'a'\n", "job_error"),
        ("", "job_error"),
    ],
)
def test_recorded_failures_map_to_codes(exc_string: str, code: str) -> None:
    error = error_from_traceback(exc_string)
    assert error["code"] == code
    assert "Traceback" not in error["message"]
    assert "File x" not in error["message"]


def test_rq_states_map_to_four_public_ones() -> None:
    assert {public_status(s) for s in JobStatus} == {"queued", "started", "finished", "failed"}
    assert public_status(JobStatus.SCHEDULED) == "queued"
    assert public_status(JobStatus.STOPPED) == "failed"
    assert public_status(None) == "queued"


def test_accepted_is_a_202_with_the_location() -> None:
    answer = accepted("abc")
    assert answer.status_code == 202
    assert answer.headers["location"] == "/jobs/abc"
    assert orjson.loads(answer.body) == {"job_id": "abc", "status": "queued", "url": "/jobs/abc"}


def test_the_job_route_answers_and_documents_the_id(client: redis.Redis, redis_url: str) -> None:
    app = create_app(ServiceSettings(), title="t")
    add_job_route(app, JobQueue(aioredis.Redis.from_url(redis_url), "test"), "/runs")
    job = Queue("test", connection=client).enqueue("tests.shared.jobfuncs.add", 2, 2)
    with TestClient(app) as http:
        change = MetricsChange(lambda: http.get("/metrics").text)
        assert http.get(f"/runs/{job.id}").json()["status"] == "queued"
        missing = http.get("/runs/nope")
        assert missing.status_code == 404
        assert missing.json()["error"]["field"] == "job_id"
        operation = http.get("/openapi.json").json()["paths"]["/runs/{job_id}"]["get"]
        assert operation["parameters"][0]["name"] == "job_id"
        assert change.increase("mlsp_http_requests_total", route="/runs/{job_id}") == 2


def test_redis_down_is_a_503_with_retry_after() -> None:
    app = create_app(ServiceSettings(), title="t")
    down = aioredis.Redis(port=1, socket_connect_timeout=0.2)
    add_job_route(app, JobQueue(down, "test"), "/jobs")
    with TestClient(app) as http:
        answer = http.get("/jobs/" + "a" * 32)
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "2"
    assert answer.json()["error"]["code"] == "dependency_unavailable"
