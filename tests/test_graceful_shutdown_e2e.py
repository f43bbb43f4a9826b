"""Graceful shutdown, end to end: `make down` during work loses nothing, in-flight requests finish.

SIGTERM (``docker compose stop``/``down``) reaches every service, dependents first: the api
stops taking requests and finishes those in flight (uvicorn's graceful shutdown,
``GRACEFUL_SHUTDOWN_S``), a worker finishes its current job and leaves the rest queued
(RQ's warm shutdown), a predictor finishes the calls it has (gRPC graceful stop), then
Redis writes its append-only file and exits; ``stop_grace_period`` gives each the time.
"""

import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.chaos import job_runs
from tests.compose_stack import ComposeStack

pytestmark = pytest.mark.e2e

ROW = [5.1, 3.5, 1.4, 0.2]


@pytest.fixture(scope="module")
def async_stack() -> Iterator[ComposeStack]:
    # EXTRA_WORK_MS is per model run, and a worker runs the jobs waiting as one batch: two
    # at a time keeps the burst below several seconds long, batches included.
    env = {"WORKERS": "1", "WORKER_BATCH_SIZE": "2", "EXTRA_WORK_MS": "300", "ACCESS_LOG": "true"}
    with ComposeStack("async", **env) as stack:
        yield stack


def test_make_down_during_work_loses_no_accepted_job(async_stack: ComposeStack) -> None:
    stack = async_stack
    accepted = []
    for _ in range(20):  # 0.3 s for each two on one worker: a burst of 3 s of work
        answer = stack.post("/predict", json={"instances": [ROW]})
        assert answer.status_code == 202
        accepted.append(answer.json()["job_id"])
    time.sleep(1.0)
    stack.compose("stop")  # what `make down` does first: SIGTERM to every container
    before = job_runs(stack)  # the logs go with the containers: read them first
    stack.compose("down", "--remove-orphans")  # `make down` keeps the volumes (Redis AOF)
    done_before = [job_id for job_id in accepted if before[job_id]]
    assert 0 < len(done_before) < len(accepted), "the stop came before or after all the work"
    stack.up()
    stack.wait_for(
        lambda: all(
            stack.get(f"/jobs/{job_id}").json()["status"] == "finished" for job_id in accepted
        ),
        "every accepted job to finish after the next up",
        timeout_s=60,
    )
    runs = before + job_runs(stack)
    assert {job_id: runs[job_id] for job_id in accepted} == dict.fromkeys(accepted, 1)


def request_in_background(stack: ComposeStack) -> tuple[threading.Thread, list[httpx.Response]]:
    answers: list[httpx.Response] = []

    def send() -> None:
        with httpx.Client(base_url=stack.base_url, timeout=30) as client:
            answers.append(client.post("/predict", json={"instances": [ROW]}))

    thread = threading.Thread(target=send)
    thread.start()
    return thread, answers


def test_a_request_in_flight_finishes_when_the_api_or_the_predictor_stops() -> None:
    env = {"DELAY_MS": "3000", "PREDICTOR_TIMEOUT_S": "10"}  # each inference takes 3 s
    with ComposeStack("sync", **env) as stack:
        for service in ("api", "predictor"):
            thread, answers = request_in_background(stack)
            time.sleep(1.0)  # the request is waiting for the predictor
            started = time.monotonic()
            stack.compose("stop", service)
            stopped_in = time.monotonic() - started
            thread.join(30)
            assert [a.status_code for a in answers] == [200], f"stopping {service}: {answers}"
            assert answers[0].json()["predictions"][0]["label"] == "setosa"
            assert stopped_in < 12, f"{service} took {stopped_in:.1f} s to stop"
            stack.compose("up", "-d", "--wait", service)
            stack.wait_ready()
