"""Live workers: heartbeat, the rescue of a killed worker's job, request ids, health."""

import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import orjson
import pytest
import redis
from prometheus_client import REGISTRY
from rq import Queue, Retry
from rq.job import Job

from shared.jobs.contract import fetch_job, job_view
from shared.jobs.worker import (
    Heartbeat,
    LiveWorker,
    WorkerSettings,
    live_workers,
    liveness_key,
    worker_name,
)
from shared.kit.health_server import failures, start_health_server
from shared.kit.logs import JsonFormatter
from tests.compose_stack import REPO_ROOT, free_port
from tests.shared import jobfuncs

FAST = WorkerSettings(worker_heartbeat_s=0.2, worker_maintenance_s=1)
# A worker in its own process, as in a container (heartbeat, health server, LiveWorker).
WORKER_PROCESS = """
import sys
from shared.stores.redis_client import RedisSettings
from shared.kit.settings import ServiceSettings
from shared.jobs.worker import WorkerSettings, run_worker
url, port = sys.argv[1], int(sys.argv[2])
run_worker(
    ["test"],
    ServiceSettings(port=port),
    RedisSettings(redis_url=url),
    WorkerSettings(worker_heartbeat_s=0.2, worker_maintenance_s=1),
)
"""


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


@pytest.fixture
def worker_process(redis_url: str) -> Iterator[Callable[[], subprocess.Popen]]:
    """Starts workers in child processes; kills what is left at the end."""
    started: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "-c", WORKER_PROCESS, redis_url, str(free_port())],
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def wait_for(predicate: Callable[[], bool], timeout_s: float = 15, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def kill_when_started(job: Job, process: subprocess.Popen, attempt: int) -> None:
    """SIGKILL ``process`` once ``job`` runs its ``attempt``-th attempt."""
    wait_for(
        lambda: job.get_meta(refresh=True).get("attempt_started", 0) >= attempt,
        what=f"attempt {attempt} to start",
    )
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def maintain_until(worker: LiveWorker, predicate: Callable[[], bool], timeout_s: float) -> float:
    """Run the worker's maintenance until ``predicate``; the seconds it took."""
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout_s, "the dead worker's job was not handled"
        worker.clean_registries()
        time.sleep(0.2)
    return time.monotonic() - started


def test_a_killed_workers_job_is_retried_then_failed_with_a_reason(
    client: redis.Redis, worker_process: Callable[[], subprocess.Popen]
) -> None:
    queue = Queue("test", connection=client)
    job = queue.enqueue(
        "tests.shared.jobfuncs.sleep_then_add", 30, 1, 2, retry=Retry(max=1), job_timeout=60
    )
    rescuer = LiveWorker(["test"], connection=client, name="rescuer", settings=FAST)

    kill_when_started(job, worker_process(), attempt=1)
    assert job.get_status() == "started"
    took = maintain_until(rescuer, lambda: job.get_status() == "queued", timeout_s=10)
    assert took < 5  # three missed beats (0.6 s) and a maintenance pass, not RQ's 60 s + timeout
    assert job_view(fetch_job(client, job.id))["status"] == "queued"
    job.refresh()
    assert job.retries_left == 0

    kill_when_started(job, worker_process(), attempt=2)
    maintain_until(rescuer, lambda: job.get_status() == "failed", timeout_s=10)
    view = job_view(fetch_job(client, job.id))
    assert view["status"] == "failed"
    assert view["error"]["code"] == "worker_lost"
    assert view["result"] is None


def test_a_live_busy_worker_keeps_its_job(
    client: redis.Redis, worker_process: Callable[[], subprocess.Popen]
) -> None:
    job = Queue("test", connection=client).enqueue(
        "tests.shared.jobfuncs.sleep_then_add", 2.5, 1, 2, job_timeout=30
    )
    process = worker_process()
    wait_for(lambda: job.get_status() == "started", what="the job to start")
    rescuer = LiveWorker(["test"], connection=client, name="rescuer", settings=FAST)
    for _ in range(5):  # well past the grace of three beats
        assert rescuer.expire_jobs_of_dead_workers(Queue("test", connection=client)) == []
        time.sleep(0.25)
    wait_for(lambda: job.get_status() == "finished", what="the job to finish")
    assert job_view(fetch_job(client, job.id))["result"] == 3
    process.send_signal(signal.SIGTERM)  # warm shutdown: leaves and removes its liveness key
    assert process.wait(timeout=10) == 0
    assert client.keys(liveness_key("*")) == []


def test_a_job_taken_off_the_queue_but_never_started_is_put_back(client: redis.Redis) -> None:
    """As when a worker is stopped, or loses Redis, between RQ's dequeue and the job's start."""
    queue = Queue("test", connection=client)
    job = queue.enqueue("tests.shared.jobfuncs.add", 1, 2)
    assert client.lmove(queue.key, queue.intermediate_queue_key) == job.id.encode()
    rescuer = LiveWorker(["test"], connection=client, name="rescuer", settings=FAST)
    assert rescuer.requeue_jobs_taken_but_not_started(queue) == []  # first seen: maybe starting
    time.sleep(rescuer.grace_s)
    other = LiveWorker(["test"], connection=client, name="other", settings=FAST)
    other.requeue_jobs_taken_but_not_started(queue)
    assert rescuer.requeue_jobs_taken_but_not_started(queue) == [job.id]
    time.sleep(other.grace_s)
    assert other.requeue_jobs_taken_but_not_started(queue) == []  # moved once, not twice
    assert queue.job_ids == [job.id]
    assert client.llen(queue.intermediate_queue_key) == 0
    rescuer.work(burst=True)
    assert job.get_status() == "finished"
    assert job.return_value() == 3


def test_jobs_log_their_request_id_and_are_counted(
    client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    queue = Queue("test", connection=client)
    queue.enqueue("tests.shared.jobfuncs.add", 1, 2, meta={"request_id": "req-42"})
    queue.enqueue("tests.shared.jobfuncs.explode", "bad")
    with caplog.at_level(logging.INFO, logger="shared.jobs.worker"):
        LiveWorker(["test"], connection=client, name="w", settings=FAST).work(burst=True)
    records = [r for r in caplog.records if r.name == "shared.jobs.worker" and r.msg == "job %s"]
    lines = [orjson.loads(JsonFormatter("worker").format(r)) for r in records]
    assert [line["msg"] for line in lines] == ["job finished", "job failed"]
    assert lines[0]["queue"] == "test"
    assert REGISTRY.get_sample_value("mlsp_jobs_total", {"queue": "test", "status": "failed"})
    assert REGISTRY.get_sample_value("mlsp_stage_duration_seconds_count", {"stage": "queue_wait"})


def test_request_id_is_in_context_while_the_job_runs(client: redis.Redis) -> None:
    job = Queue("test", connection=client).enqueue(
        "shared.kit.logs.request_id_var.get", meta={"request_id": "req-7"}
    )
    LiveWorker(["test"], connection=client, name="w", settings=FAST, log_jobs=False).work(
        burst=True
    )
    assert job_view(fetch_job(client, job.id))["result"] == "req-7"


def test_heartbeat_sets_and_removes_the_liveness_key(client: redis.Redis) -> None:
    beat = Heartbeat(client, liveness_key("hb"), 0.1)
    assert beat.check() == "no heartbeat has reached Redis yet"
    beat.start()
    assert client.exists(liveness_key("hb"))
    assert 0 < client.pttl(liveness_key("hb")) <= 300
    assert beat.check() is None
    beat.stop()
    assert not client.exists(liveness_key("hb"))


def test_heartbeat_to_a_dead_redis_is_not_ready() -> None:
    beat = Heartbeat(redis.Redis(port=1, socket_connect_timeout=0.1), "k", 0.1)
    assert beat.beat() is False
    assert beat.check() == "no heartbeat has reached Redis yet"


@pytest.mark.parametrize(
    ("batch_size", "most_per_job"),
    [(1, 12), (16, 1.5)],  # RQ's SimpleWorker alone: about 21 a job
)
def test_a_job_costs_few_redis_round_trips(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch, batch_size: int, most_per_job: float
) -> None:
    queue = Queue("test", connection=client)
    for _ in range(48):
        queue.enqueue("tests.shared.jobfuncs.add", 1, 2, retry=Retry(max=1))
    worker = jobfuncs.batching_worker(client, batch_size)
    sent = []
    original = redis.connection.Connection.send_packed_command
    monkeypatch.setattr(
        redis.connection.Connection,
        "send_packed_command",
        lambda self, *args, **kwargs: sent.append(1) or original(self, *args, **kwargs),
    )
    worker.work(burst=True)
    assert len(sent) / 48 < most_per_job
    assert queue.finished_job_registry.count == 48


def test_only_workers_that_beat_count_as_live(client: redis.Redis) -> None:
    queue = Queue("test", connection=client)
    assert live_workers(queue) == 0
    for name in ("beating", "silent"):
        LiveWorker(["test"], connection=client, name=name, settings=FAST).register_birth()
    client.set(liveness_key("beating"), "1")
    assert live_workers(queue) == 1


def test_worker_names_are_unique_and_name_the_host() -> None:
    assert worker_name() != worker_name()
    assert worker_name().startswith(os.uname().nodename)


def test_health_server_answers_like_the_http_services() -> None:
    reasons: dict[str, str | None] = {"model": "model not loaded"}
    server = start_health_server({"model": lambda: reasons["model"]}, port=free_port())
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with urllib.request.urlopen(f"{base}/health/live") as answer:
            assert orjson.loads(answer.read()) == {"status": "alive"}
        with pytest.raises(urllib.error.HTTPError) as not_ready:
            urllib.request.urlopen(f"{base}/health/ready")
        assert not_ready.value.code == 503
        assert not_ready.value.headers["Retry-After"] == "1"
        assert orjson.loads(not_ready.value.read())["checks"] == {"model": "model not loaded"}
        reasons["model"] = None
        with urllib.request.urlopen(f"{base}/health/ready") as answer:
            assert orjson.loads(answer.read()) == {"status": "ready"}
        with urllib.request.urlopen(f"{base}/metrics") as answer:
            assert b"mlsp_" in answer.read()
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{base}/nope")
        assert missing.value.code == 404
    finally:
        server.shutdown()


def test_a_raising_check_is_a_reason() -> None:
    def broken() -> str | None:
        raise OSError("disk gone")

    assert failures({"disk": broken, "ok": lambda: None}) == {"disk": "OSError: disk gone"}
