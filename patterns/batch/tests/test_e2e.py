"""batch end to end: the real stack, its scheduler, its workers killed mid-run.

One stack for the module: two workers, a run every 3 s, chunks of 200 rows
that take 0.1 s more each (a heavier model), fast heartbeats. Every check of
"exactly one correct prediction per row" reads the tables and recomputes each
prediction with the same model on the host (the export is deterministic: the
test first checks the stack's model has the same sha256).
"""

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from shared.serving.model import OnnxModel
from tests.compose_stack import ComposeStack

pytestmark = pytest.mark.e2e

CRON_PAUSE_KEY = "mlsp:batch:cron-paused"  # as patterns/batch/job/jobs.py names it
STACK_ENV = {
    "WORKERS": "2",
    "BATCH_INTERVAL_S": "3",
    "BATCH_CHUNK_SIZE": "200",
    "BATCH_RUN_STALE_S": "10",
    "WORKER_HEARTBEAT_S": "0.5",
    "WORKER_MAINTENANCE_S": "1",
    "EXTRA_WORK_MS": "100",  # 0.1 s per chunk: a run of thousands of rows lasts seconds
}


@pytest.fixture(scope="module")
def stack() -> Iterator[ComposeStack]:
    with ComposeStack("batch", **STACK_ENV) as stack:
        yield stack


@pytest.fixture(scope="module")
def model(stack: ComposeStack, model_repo: Path) -> OnnxModel:
    """The model on the host, checked to be the stack's."""
    local = OnnxModel.load(model_repo, "iris")
    assert stack.get("/model").json()["sha256"] == local.metadata.sha256
    return local


def sql(stack: ComposeStack, query: str) -> str:
    """Run ``query`` with psql in the postgres container; its unaligned output."""
    return stack.compose(
        "exec", "-T", "postgres", "psql", "-U", "mlsp", "-d", "mlsp", "-At", "-v",
        "ON_ERROR_STOP=1", "-c", query,
    ).strip()  # fmt: skip


def redis_cli(stack: ComposeStack, *args: str) -> str:
    return stack.compose("exec", "-T", "redis", "redis-cli", *args).strip()


def ctl(stack: ComposeStack, *args: str) -> str:
    return stack.compose("run", "--rm", "ctl", *args)


def progress(stack: ComposeStack) -> dict[str, Any]:
    return stack.get("/progress").json()


def wait_until_nothing_pending(stack: ComposeStack, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        now = progress(stack)
        if now["pending"] == 0:
            return now
        assert time.monotonic() < deadline, f"still {now['pending']} rows pending"
        time.sleep(0.3)


def assert_exactly_one_correct_prediction_per_row(stack: ComposeStack, model: OnnxModel) -> int:
    """Every done row has one prediction, the model's; returns how many rows were checked."""
    rows = orjson.loads(
        sql(
            stack,
            "SELECT coalesce(json_agg(json_build_object('id', i.id, 'features', i.features, "
            "'status', i.status, 'answers', (SELECT coalesce(json_agg(json_build_object("
            "'label', p.label, 'probabilities', p.probabilities, 'model', p.model_name)), '[]') "
            "FROM batch_predictions p WHERE p.input_id = i.id))), '[]') "
            "FROM batch_inputs i WHERE i.status <> 'failed'",
        )
    )
    assert rows
    assert {row["status"] for row in rows} == {"done"}
    assert all(len(row["answers"]) == 1 for row in rows), "a row has no or several predictions"
    features = np.asarray([row["features"] for row in rows], dtype=np.float32)
    expected = model.predict_proba(features)
    labels = model.metadata.labels
    for row, probabilities in zip(rows, expected, strict=True):
        (answer,) = row["answers"]
        assert answer["model"] == "iris"
        assert answer["label"] == labels[int(probabilities.argmax())]
        got = [answer["probabilities"][label] for label in labels]
        assert got == pytest.approx(probabilities.tolist(), abs=2e-6)
    return len(rows)


def test_every_service_is_healthy_and_only_the_api_is_published(stack: ComposeStack) -> None:
    running = stack.compose("ps", "--format", "{{.Service}} {{.Health}}").split("\n")
    assert sorted(line for line in running if line) == [
        "api healthy", "postgres healthy", "redis healthy", "scheduler healthy",
        "worker healthy", "worker healthy",
    ]  # fmt: skip
    ports = stack.compose("ps", "--format", "{{.Service}}|{{.Ports}}").splitlines()
    assert [line.split("|")[0] for line in ports if "->" in line] == ["api"]
    migrate = stack.compose("ps", "-a", "--format", "{{.Service}} {{.State}} {{.ExitCode}}")
    assert "migrate exited 0" in migrate
    for service in ("api", "worker", "scheduler"):
        assert stack.compose("exec", "-T", service, "id", "-u").strip() == "10001"


def test_the_scheduled_run_gives_every_row_exactly_one_correct_prediction(
    stack: ComposeStack, model: OnnxModel
) -> None:
    before = wait_until_nothing_pending(stack)["done"]  # what the module's other tests left
    assert "loaded 3000 pending rows" in ctl(stack, "load", "3000")
    done = wait_until_nothing_pending(stack)  # nobody starts a run: the scheduler does
    assert done["done"] == before + 3000
    assert done["runs"][0]["trigger"] == "cron"
    assert assert_exactly_one_correct_prediction_per_row(stack, model) == before + 3000


def test_bad_rows_are_refused_or_failed_with_a_reason_and_lose_nothing(
    stack: ComposeStack, model: OnnxModel
) -> None:
    before = wait_until_nothing_pending(stack)  # so that the run below has only these rows
    bad = stack.post("/rows", json={"instances": [[5.1, 3.5, 1.4]]})
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "instances[0]"
    assert progress(stack)["total"] == before["total"]
    last = int(sql(stack, "SELECT coalesce(max(id), 0) FROM batch_inputs"))
    redis_cli(stack, "set", CRON_PAUSE_KEY, "e2e")  # so that `make batch-run` does this run
    try:
        # Rows that reach the table by another way (an ETL job, psql), the model can't take:
        sql(
            stack,
            "INSERT INTO batch_inputs (features) VALUES "
            "('{1,2,3}'), ('{5.1,NULL,1.4,0.2}'), ('{5.1,NaN,1.4,0.2}')",
        )
        added = stack.post(
            "/rows", json={"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}
        )
        assert added.status_code == 202
        result = stack.run("make", "batch-run", timeout_s=300)
    finally:
        redis_cli(stack, "del", CRON_PAUSE_KEY)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " finished: 5 rows in " in result.stdout
    assert progress(stack)["pending"] == 0
    failed = dict(
        line.split("|", 1)
        for line in sql(
            stack, f"SELECT id, error FROM batch_inputs WHERE status = 'failed' AND id > {last}"
        ).splitlines()
    )
    assert sorted(failed.values()) == [
        "has 3 values; the model takes 4",
        "value 1 (nan) is not a finite float32",
        "value 1 is null",
    ]
    for row_id, label in zip(added.json()["ids"], ["setosa", "virginica"], strict=True):
        row = stack.get(f"/rows/{row_id}").json()
        assert (row["status"], row["prediction"]["label"]) == ("done", label)
    assert assert_exactly_one_correct_prediction_per_row(stack, model) == before["done"] + 2


def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(
    stack: ComposeStack, model: OnnxModel
) -> None:
    before = wait_until_nothing_pending(stack)["done"]  # so that the run has only these rows
    ctl(stack, "load", "16000")
    victim = None
    deadline = time.monotonic() + 60
    while victim is None:  # a worker inside a chunk's transaction, while rows are pending
        assert time.monotonic() < deadline, "no run got going"
        if progress(stack)["done"] > before:
            victim = sql(
                stack,
                "SELECT application_name FROM pg_stat_activity WHERE xact_start IS NOT NULL "
                "AND application_name ~ '^[0-9a-f]{12}-' LIMIT 1",
            )
        time.sleep(0.1)
    subprocess.run(["docker", "kill", victim.split("-")[0]], check=True, capture_output=True)
    assert progress(stack)["pending"] > 0, "the run ended before the kill"
    wait_until_nothing_pending(stack, timeout_s=120)
    # The survivor hands the dead worker's drain back (retried: it finds nothing left),
    # and the run ends with every row counted once.
    deadline = time.monotonic() + 60
    while (run := progress(stack)["runs"][0])["finished_at"] is None:
        assert time.monotonic() < deadline, f"the run did not end: {run}"
        time.sleep(0.3)
    assert (run["pending_at_start"], run["rows_done"], run["drains_done"]) == (16000, 16000, 2)
    assert any(
        victim in line and "stopped beating" in line for line in stack.logs("worker").splitlines()
    ), "no worker handed the dead worker's drain back"
    subprocess.run(["docker", "start", victim.split("-")[0]], check=True, capture_output=True)
    assert progress(stack)["done"] == before + 16000
    assert assert_exactly_one_correct_prediction_per_row(stack, model) == before + 16000
    duplicates = sql(stack, "SELECT count(*) - count(DISTINCT input_id) FROM batch_predictions")
    assert duplicates == "0"


def test_locust_smoke_load_adds_rows_without_failures(stack: ComposeStack) -> None:
    rows = stack.locust_smoke(seconds=3, users=2)
    assert rows["POST /rows"]["requests"] > 0
    assert rows["Aggregated"]["failures"] == 0


def test_bench_reports_both_rates(stack: ComposeStack) -> None:
    wait_until_nothing_pending(stack)  # no run of other tests' rows under the bench's feet
    out = ctl(stack, "bench", "4000")
    report = orjson.loads(out.strip().splitlines()[-1])
    assert (report["rows"], report["rounds"]) == (4000, 1)
    assert report["predict_rows_per_s_median"] > 0
    assert report["db_only_rows_per_s_median"] > 0
    assert progress(stack)["done"] == 4000  # the bench starts from empty tables


def test_readme_examples_answer_as_quoted(stack: ComposeStack) -> None:
    assert stack.readme_example_problems() == []
