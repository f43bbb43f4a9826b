"""async end to end: the real stack from docker compose, used and abused as in production.

One stack for the module (one worker to start with, short result TTL, one retry,
fast heartbeats). The tests stop, kill and scale containers: the order below is
the order they run in, and each leaves the stack as the next one expects.
"""

import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import pytest

from tests.api_keys_e2e import (
    E2E_KEY,
    assert_guarded,
    assert_no_key_in_logs,
    assert_open_without_a_key,
    keys_on,
    with_key,
)
from tests.compose_stack import ComposeStack
from tests.metrics_text import MetricsChange, sample_total

pytestmark = pytest.mark.e2e

GOOD_ROW = [5.1, 3.5, 1.4, 0.2]
RESULT_TTL_S = 6
STACK_ENV = {
    "WORKERS": "1",
    "RESULT_TTL_S": str(RESULT_TTL_S),
    "JOB_RETRIES": "1",
    "WORKER_HEARTBEAT_S": "0.5",
    "WORKER_MAINTENANCE_S": "1",
}


@pytest.fixture(scope="module")
def stack() -> Iterator[ComposeStack]:
    with ComposeStack("async", **STACK_ENV) as stack:
        yield stack


def submit(stack: ComposeStack, body: dict[str, Any]) -> str:
    answer = stack.post("/predict", json=body)
    assert answer.status_code == 202, answer.text
    return answer.json()["job_id"]


def wait_status(
    stack: ComposeStack, job_id: str, statuses: set[str], timeout_s: float = 30
) -> dict[str, Any]:
    """Poll the job until its status is one of ``statuses``; the job resource."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = stack.get(f"/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['status']}"
        time.sleep(0.1)


def redis_cli(stack: ComposeStack, *args: str) -> str:
    return stack.compose("exec", "-T", "redis", "redis-cli", *args).strip()


def job_keys(stack: ComposeStack) -> set[str]:
    return set(redis_cli(stack, "--scan", "--pattern", "rq:job:*").split())


def json_lines(text: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in text.splitlines() if line.startswith("{")]


def callbacks_received(stack: ComposeStack, job_id: str, timeout_s: float = 10) -> list[dict]:
    """The receiver's log lines of the callbacks it took for ``job_id``, once there are any."""
    deadline = time.monotonic() + timeout_s
    while True:
        received = [
            line for line in json_lines(stack.logs("callback-receiver"))
            if line.get("job_id") == job_id and line.get("msg") == "callback received"
        ]  # fmt: skip
        if received or time.monotonic() > deadline:
            return received
        time.sleep(0.2)


def test_every_service_is_healthy_and_only_the_api_is_published(stack: ComposeStack) -> None:
    running = stack.compose("ps", "--format", "{{.Service}} {{.Health}}").split("\n")
    assert sorted(line for line in running if line) == [
        "api healthy", "callback-receiver healthy", "redis healthy", "worker healthy",
    ]  # fmt: skip
    ports = stack.compose("ps", "--format", "{{.Service}}|{{.Ports}}").splitlines()
    assert [line.split("|")[0] for line in ports if "->" in line] == ["api"]
    assert stack.compose("port", "api", "8080").strip() == f"127.0.0.1:{stack.port}"
    assert stack.compose("exec", "-T", "worker", "id", "-u").strip() == "10001"
    assert stack.compose("exec", "-T", "api", "id", "-u").strip() == "10001"


def test_submit_then_poll_gives_the_models_known_answers(stack: ComposeStack) -> None:
    examples = stack.get("/model").json()["examples"]
    answer = stack.post("/predict", json={"instances": [e["input"] for e in examples]})
    assert answer.status_code == 202
    body = answer.json()
    assert body["status"] == "queued"
    assert answer.headers["location"] == body["url"] == f"/jobs/{body['job_id']}"
    job = wait_status(stack, body["job_id"], {"finished", "failed"})
    assert job["status"] == "finished"
    assert job["error"] is None
    result = job["result"]
    assert (result["model_name"], result["model_version"]) == ("iris", "1")
    assert [p["label"] for p in result["predictions"]] == [e["true_label"] for e in examples]
    for prediction, example in zip(result["predictions"], examples, strict=True):
        assert list(prediction["probabilities"].values()) == pytest.approx(
            example["probabilities"], abs=1e-4
        )


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"instances": [[5.1, 3.5, 1.4]]}, "instances[0]", "has 3 values; the model takes 4"),
        ({"instances": [[5.1, "wide", 1.4, 0.2]]}, "instances[0][1]", 'got "wide"'),
        (b'{"instances": [[5.1, 3.5, NaN, 0.2]]}', "body", "not valid JSON"),
        ({"instances": []}, "instances", "at least one row"),
        ({"rows": [GOOD_ROW]}, "instances", '"instances" list'),
        (
            {"instances": [GOOD_ROW], "callback_url": "http://169.254.169.254/"},
            "callback_url",
            "is not allowed",
        ),
    ],
)
def test_bad_input_gets_422_at_once_and_queues_nothing(
    stack: ComposeStack, body: object, field: str, says: str
) -> None:
    before = job_keys(stack)
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    answer = stack.post("/predict", content=content, headers={"Content-Type": "application/json"})
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert (error["field"], error["request_id"]) == (field, answer.headers["x-request-id"])
    assert says in error["message"]
    assert not job_keys(stack) - before  # no new job (earlier ones may expire meanwhile)
    job_id = submit(stack, {"instances": [GOOD_ROW]})
    assert wait_status(stack, job_id, {"finished", "failed"})["status"] == "finished"


def test_unknown_jobs_are_404(stack: ComposeStack) -> None:
    for job_id in ("0" * 32, "no-such-job"):
        answer = stack.get(f"/jobs/{job_id}")
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "not_found"


def test_the_callback_url_receives_the_job_and_its_request_id(stack: ComposeStack) -> None:
    job_id = submit(
        stack,
        {"instances": [GOOD_ROW], "callback_url": "http://callback-receiver:8080/callbacks"},
    )
    job = wait_status(stack, job_id, {"finished", "failed"})
    received = callbacks_received(stack, job_id)
    assert len(received) == 1
    assert received[0]["body"] == job


RECEIVER_STATUS = """
import urllib.error, urllib.request
request = urllib.request.Request(
    "http://callback-receiver:8080/callbacks", data=b"{}", method="POST", headers=HEADERS)
try:
    print(urllib.request.urlopen(request, timeout=5).status)
except urllib.error.HTTPError as exc:
    print(exc.code)
"""


def test_with_keys_and_cors_on_submit_poll_and_callbacks_need_a_key(stack: ComposeStack) -> None:
    body = {"instances": [GOOD_ROW], "callback_url": "http://callback-receiver:8080/callbacks"}
    with keys_on(stack, "api", "worker", "callback-receiver"):
        job_id = assert_guarded(stack, "POST", "/predict", json=body).json()["job_id"]
        deadline = time.monotonic() + 30
        while stack.get(f"/jobs/{job_id}", headers=with_key()).json()["status"] != "finished":
            assert time.monotonic() < deadline, f"job {job_id} did not finish"
            time.sleep(0.1)
        job = assert_guarded(stack, "GET", f"/jobs/{job_id}").json()
        # The worker sent the key: the receiver, which needs one too, took the callback.
        (received,) = callbacks_received(stack, job_id)
        assert received["body"] == job
        for headers, status in (("{}", "401"), (f"{{'X-API-Key': '{E2E_KEY}'}}", "204")):
            program = RECEIVER_STATUS.replace("HEADERS", headers)
            ran = stack.compose("exec", "-T", "api", "python", "-c", program)
            assert ran.strip() == status
        assert_open_without_a_key(stack)
        assert_no_key_in_logs(stack)
    wait_status(stack, submit(stack, {"instances": [GOOD_ROW]}), {"finished"})  # keys off again


def test_results_expire_after_the_ttl(stack: ComposeStack) -> None:
    job_id = submit(stack, {"instances": [GOOD_ROW]})
    wait_status(stack, job_id, {"finished"})
    assert 0 < int(redis_cli(stack, "ttl", f"rq:job:{job_id}")) <= RESULT_TTL_S
    time.sleep(RESULT_TTL_S + 0.5)
    assert stack.get(f"/jobs/{job_id}").status_code == 404


def test_jobs_wait_while_no_worker_runs_and_are_done_when_one_starts(
    stack: ComposeStack,
) -> None:
    stack.compose("stop", "worker")
    try:
        job_ids = [submit(stack, {"instances": [GOOD_ROW]}) for _ in range(5)]
        time.sleep(2)
        assert {stack.get(f"/jobs/{i}").json()["status"] for i in job_ids} == {"queued"}
    finally:
        stack.compose("start", "worker")
    for job_id in job_ids:
        assert wait_status(stack, job_id, {"finished", "failed"})["status"] == "finished"


def test_queued_jobs_survive_a_redis_crash(stack: ComposeStack) -> None:
    stack.compose("stop", "worker")
    try:
        job_ids = [submit(stack, {"instances": [GOOD_ROW]}) for _ in range(20)]
        stack.compose("kill", "redis")  # SIGKILL: no clean shutdown, only the append-only file
        down = stack.post("/predict", json={"instances": [GOOD_ROW]})
        assert down.status_code == 503
        assert down.headers["retry-after"] == "2"
        assert down.json()["error"]["code"] == "dependency_unavailable"
        assert stack.get("/health/ready").status_code == 503
        stack.compose("up", "-d", "--wait", "--no-deps", "redis")
        stack.wait_ready()
        assert {stack.get(f"/jobs/{i}").json()["status"] for i in job_ids} == {"queued"}
    finally:
        stack.compose("start", "worker")
    for job_id in job_ids:
        assert wait_status(stack, job_id, {"finished", "failed"})["status"] == "finished"


def test_a_long_poll_answers_when_the_job_ends_or_at_its_timeout(stack: ComposeStack) -> None:
    """Woken by the worker's announcement, through the api's subscription (made again
    after the Redis crash above); a job that does not end is answered at the timeout."""

    def metrics() -> str:
        return stack.get("/metrics").text

    change = MetricsChange(metrics)
    stack.compose("pause", "worker")
    with ThreadPoolExecutor(1) as pool:
        try:
            job_id = submit(stack, {"instances": [GOOD_ROW]})
            timed_out = stack.get(f"/jobs/{job_id}", params={"wait_s": "0.3"})
            assert (timed_out.status_code, timed_out.json()["status"]) == (200, "queued")
            waiting = pool.submit(stack.get, f"/jobs/{job_id}", params={"wait_s": "5"})
            stack.wait_for(lambda: sample_total(metrics(), "mlsp_job_waiters") == 1, "a waiter")
        finally:
            stack.compose("unpause", "worker")  # the job runs and its end is announced
        answer = waiting.result(timeout=30)
    assert (answer.status_code, answer.json()["status"]) == (200, "finished")
    assert change.increase("mlsp_job_waits_total", outcome="ended") == 1
    assert change.increase("mlsp_job_waits_total", outcome="timed_out") == 1
    assert sample_total(metrics(), "mlsp_job_waiters") == 0
    too_long = stack.get(f"/jobs/{job_id}", params={"wait_s": "60"})
    assert (too_long.status_code, too_long.json()["error"]["field"]) == (422, "wait_s")


def test_locust_smoke_load_reports_submit_and_end_to_end_times(stack: ComposeStack) -> None:
    rows = stack.locust_smoke(seconds=5, users=4)
    assert rows["POST /predict"]["requests"] > 0
    assert rows["job completed"]["requests"] > 0
    assert rows["job completed"]["p50_ms"] >= rows["POST /predict"]["p50_ms"]
    assert rows["Aggregated"]["failures"] == 0


def test_a_job_whose_worker_is_killed_is_retried_then_failed_with_a_reason(
    stack: ComposeStack,
) -> None:
    try:
        with stack.overridden(EXTRA_WORK_MS="4000"):  # a heavier model: each job takes 4 s
            stack.compose("up", "-d", "--no-deps", "--wait", "worker")
            job_id = submit(stack, {"instances": [GOOD_ROW]})
            for attempt in (1, 2):
                wait_status(stack, job_id, {"started"})
                stack.compose("kill", "worker")  # SIGKILL mid-job
                stack.compose("start", "worker")
                if attempt == 1:  # another worker (here: the restarted one) hands it back
                    rescued = wait_for_log(stack, "worker", job_id, "stopped beating")
                    assert rescued["level"] == "WARNING"
            job = wait_status(stack, job_id, {"finished", "failed"})
    finally:
        stack.compose("up", "-d", "--no-deps", "--wait", "worker")  # back to the light model
    assert job["status"] == "failed"
    assert job["result"] is None
    assert job["error"]["code"] == "worker_lost"
    assert "stopped before finishing" in job["error"]["message"]
    assert "Traceback" not in job["error"]["message"]


def test_scale_out_spreads_jobs_over_the_workers(stack: ComposeStack) -> None:
    with stack.overridden(EXTRA_WORK_MS="200"):
        stack.compose("up", "-d", "--no-deps", "--wait", "--scale", "worker=3", "worker")
    containers = stack.compose("ps", "-q", "worker").split()
    assert len(containers) == 3
    job_ids = {submit(stack, {"instances": [GOOD_ROW]}) for _ in range(30)}
    for job_id in job_ids:
        assert wait_status(stack, job_id, {"finished", "failed"})["status"] == "finished"
    done_by = {}
    for container in containers:
        own = json_lines(docker_logs(stack, container))
        done_by[container] = {line["job_id"] for line in own if line.get("msg") == "job finished"}
    assert set().union(*done_by.values()) >= job_ids
    assert all(done_by[c] & job_ids for c in containers), {
        c: len(done_by[c] & job_ids) for c in containers
    }


def docker_logs(stack: ComposeStack, container: str) -> str:
    """One container's log (compose's would mix the replicas)."""
    return subprocess.run(
        ["docker", "logs", container], capture_output=True, text=True, check=True, env=stack.env
    ).stdout


def wait_for_log(
    stack: ComposeStack, service: str, job_id: str, text: str, timeout_s: float = 30
) -> dict[str, Any]:
    """The first JSON log line of ``service`` about ``job_id`` whose message has ``text``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in json_lines(stack.logs(service)):
            if line.get("job_id") == job_id and text in line.get("msg", ""):
                return line
        time.sleep(0.3)
    raise AssertionError(f"no {service} log line about {job_id} says {text!r}")


def test_a_full_queue_answers_503_instead_of_growing(stack: ComposeStack) -> None:
    with stack.stopped("worker"):
        with stack.overridden(MAX_QUEUED_JOBS="3"):
            stack.compose("up", "-d", "--wait", "api")
        try:
            answers = [stack.post("/predict", json={"instances": [GOOD_ROW]}) for _ in range(6)]
            codes = [a.status_code for a in answers]
            assert codes.count(503) >= 3  # the queue held at most 3 jobs
            assert codes == sorted(codes, key=lambda c: c == 503)  # accepted until full
            refused = answers[-1]
            assert refused.headers["retry-after"] == "2"
            assert refused.json()["error"]["code"] == "queue_full"
            assert 'mlsp_queue_depth{queue="predict"}' in stack.get("/metrics").text
        finally:
            stack.compose("up", "-d", "--wait", "api")  # the stack's own bound again
    accepted = [a.json()["job_id"] for a in answers if a.status_code == 202]
    for job_id in accepted:
        assert wait_status(stack, job_id, {"finished", "failed"})["status"] == "finished"


def test_readme_examples_answer_as_quoted(stack: ComposeStack) -> None:
    assert stack.readme_example_problems() == []
