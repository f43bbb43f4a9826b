"""The batch job on real PostgreSQL and Redis: claims, chunks, bad rows, crashes, runs."""

import math
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from types import ModuleType

import orjson
import psycopg
import pytest
import redis
from rq import Queue

from tests.compose_stack import free_port

EXAMPLE_ROWS = [
    ([5.1, 3.5, 1.4, 0.2], "setosa"),
    ([6.4, 3.2, 4.5, 1.5], "versicolor"),
    ([6.7, 3.0, 5.2, 2.3], "virginica"),
]


def insert(db: psycopg.Connection, rows: list[list[float]]) -> list[int]:
    with db.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO batch_inputs (features) VALUES (%s) RETURNING id",
            [(row,) for row in rows],
            returning=True,
        )
        ids = []
        while True:
            ids.append(cursor.fetchone()[0])
            if not cursor.nextset():
                return ids


def predictions(db: psycopg.Connection) -> dict[int, list[tuple[str, dict]]]:
    found: dict[int, list[tuple[str, dict]]] = {}
    for input_id, label, probabilities in db.execute(
        "SELECT input_id, label, probabilities FROM batch_predictions WHERE model_name = 'iris'"
    ):
        found.setdefault(input_id, []).append((label, probabilities))
    return found


def statuses(db: psycopg.Connection) -> dict[str, int]:
    return dict(db.execute("SELECT status, count(*) FROM batch_inputs GROUP BY status").fetchall())


def enqueue_run(batch_env: dict[str, str], trigger: str = "api", mode: str = "predict") -> str:
    queue = Queue("batch", connection=redis.Redis.from_url(batch_env["REDIS_URL"]))
    return queue.enqueue("jobs.start_run", trigger=trigger, mode=mode).id


def test_a_run_predicts_every_pending_row_exactly_once_and_correctly(
    job: ModuleType, db: psycopg.Connection, run_jobs: Callable[[], None], batch_env: dict
) -> None:
    rows = [row for row, _ in EXAMPLE_ROWS] * 70  # 210 rows: five chunks of 50
    ids = insert(db, rows)
    run_id = enqueue_run(batch_env)
    run_jobs()
    found = predictions(db)
    assert sorted(found) == ids
    expected = {tuple(row): label for row, label in EXAMPLE_ROWS}
    for row_id, row in zip(ids, rows, strict=True):
        ((label, probabilities),) = found[row_id]
        assert label == expected[tuple(row)]
        assert math.isclose(sum(probabilities.values()), 1.0, abs_tol=1e-5)
    assert statuses(db) == {"done": 210}
    run = db.execute(
        "SELECT trigger, pending_at_start, drains, drains_done, rows_done, rows_failed, "
        "finished_at IS NOT NULL FROM batch_runs WHERE id = %s",
        (run_id,),
    ).fetchone()
    assert run == ("api", 210, 1, 1, 210, 0, True)


def test_rows_the_model_cannot_take_fail_with_a_reason_and_the_rest_is_predicted(
    job: ModuleType, db: psycopg.Connection, run_jobs: Callable[[], None], batch_env: dict
) -> None:
    good = insert(db, [[5.1, 3.5, 1.4, 0.2]] * 3)
    bad = {
        insert(db, [[5.1, 3.5, 1.4]])[0]: "has 3 values; the model takes 4",
        insert(db, [[5.1, None, 1.4, 0.2]])[0]: "value 1 is null",
        insert(db, [[5.1, float("nan"), 1.4, 0.2]])[0]: "value 1 (nan) is not a finite float32",
        insert(db, [[float("inf"), 3.5, 1.4, 0.2]])[0]: "value 0 (inf) is not a finite float32",
    }
    enqueue_run(batch_env)
    run_jobs()
    assert sorted(predictions(db)) == good
    failed = dict(db.execute("SELECT id, error FROM batch_inputs WHERE status = 'failed'"))
    assert failed == bad


def test_two_claimers_never_get_the_same_row(job: ModuleType, db: psycopg.Connection) -> None:
    store = job.store
    insert(db, [[5.1, 3.5, 1.4, 0.2]] * 30)
    url = db.info.dsn
    with psycopg.connect(url) as first, psycopg.connect(url) as second:
        one = {row_id for row_id, _ in store.claim_chunk(first, 20)}
        two = {row_id for row_id, _ in store.claim_chunk(second, 20)}
        assert len(one) == 20
        assert len(two) == 10
        assert not one & two
        second.rollback()
        three = {row_id for row_id, _ in store.claim_chunk(second, 20)}
        assert three == two  # released by the rollback, claimable again


def test_a_worker_dying_mid_chunk_loses_and_duplicates_nothing(
    job: ModuleType, db: psycopg.Connection, run_jobs: Callable[[], None], batch_env: dict
) -> None:
    store = job.store
    ids = insert(db, [[6.7, 3.0, 5.2, 2.3]] * 120)
    doomed = psycopg.connect(db.info.dsn, application_name="doomed")
    claimed = [row_id for row_id, _ in store.claim_chunk(doomed, 50)]
    outcome = job.predict_chunk([(i, [6.7, 3.0, 5.2, 2.3]) for i in claimed], job._model, "predict")
    store.write_chunk(doomed, run_id="doomed", worker="doomed", model=("iris", "1"), **outcome)
    # The process dies before COMMIT: its connection goes, and with it the transaction.
    db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'doomed'"
    )
    with pytest.raises(psycopg.OperationalError):
        doomed.commit()
    assert statuses(db) == {"pending": 120}
    enqueue_run(batch_env)
    run_jobs()
    found = predictions(db)
    assert sorted(found) == ids
    assert all(len(answers) == 1 for answers in found.values())


def test_writing_a_chunk_twice_keeps_one_prediction(
    job: ModuleType, db: psycopg.Connection
) -> None:
    store = job.store
    ids = insert(db, [[5.1, 3.5, 1.4, 0.2]] * 5)
    db.execute(
        "INSERT INTO batch_runs (id, trigger, mode, pending_at_start, drains) "
        "VALUES ('r', 'test', 'predict', 5, 1)"
    )
    outcome = job.predict_chunk([(i, [5.1, 3.5, 1.4, 0.2]) for i in ids], job._model, "predict")
    for _ in range(2):  # e.g. a re-run after a crash that happened after the first commit
        store.write_chunk(db, run_id="r", worker="w", model=("iris", "1"), **outcome)
    assert db.execute("SELECT count(*) FROM batch_predictions").fetchone()[0] == 5


@pytest.mark.parametrize(
    ("features", "reason"),
    [
        ([[1.0, 2.0, 3.0]], "has 3 values; the model takes 4"),
        ([[1.0, 2.0, 3.0, 4.0, 5.0]], "has 5 values; the model takes 4"),
        ([[1.0, None, 3.0, 4.0]], "value 1 is null"),
        ([[1.0, 2.0, 3.0, 1e39]], "value 3 (1e+39) is not a finite float32"),
        ([[[1.0], 2.0, 3.0, 4.0]], "value 0 is not a number"),
        (["1,2,3,4"], "features must be an array of 4 numbers"),
    ],
)
def test_check_rows_names_the_problem(job: ModuleType, features: list, reason: str) -> None:
    good, errors = job.check_rows([[1.0, 2.0, 3.0, 4.0], *features], 4)
    assert good == [0]
    assert errors == {1: reason}


def test_passthrough_writes_the_same_shape_without_the_model(job: ModuleType) -> None:
    outcome = job.predict_chunk([(1, [5.1, 3.5, 1.4, 0.2])], job._model, "passthrough")
    ids, encoded = outcome["done"]
    assert ids == [1]
    (prediction,) = orjson.loads(encoded)
    assert prediction["id"] == 1
    assert prediction["label"] == "setosa"  # the first of three equal probabilities
    assert prediction["probabilities"]["virginica"] == pytest.approx(1 / 3, abs=1e-6)


def test_a_run_starts_one_drain_per_worker_and_only_when_needed(
    job: ModuleType, db: psycopg.Connection, run_jobs: Callable[[], None], batch_env: dict
) -> None:
    client = redis.Redis.from_url(batch_env["REDIS_URL"])
    queue = Queue("batch", connection=client)
    nothing = queue.enqueue("jobs.start_run")
    run_jobs()
    assert nothing.return_value() == {"run_id": None, "skipped": "no pending rows"}
    insert(db, [[5.1, 3.5, 1.4, 0.2]] * 10)
    client.set(job.CRON_PAUSE_KEY, "test")
    paused = queue.enqueue("jobs.start_run", trigger="cron")
    run_jobs()
    assert paused.return_value() == {"run_id": None, "skipped": "scheduled runs are paused"}
    db.execute(
        "INSERT INTO batch_runs (id, trigger, mode, pending_at_start, drains) "
        "VALUES ('busy', 'test', 'predict', 10, 1)"
    )
    blocked = queue.enqueue("jobs.start_run", trigger="api")
    run_jobs()
    assert blocked.return_value()["skipped"] == "run busy is still in progress"
    assert statuses(db) == {"pending": 10}


def test_sample_rows_are_seeded_plausible_flowers(ctl: ModuleType) -> None:
    examples = [row for row, _ in EXAMPLE_ROWS]
    rows = list(ctl.sample_rows(examples, 25_000, seed=7))
    assert len(rows) == 25_000
    assert rows == list(ctl.sample_rows(examples, 25_000, seed=7))
    assert rows != list(ctl.sample_rows(examples, 25_000, seed=8))
    assert all(len(row) == 4 and min(row) >= 0.1 for row in rows)
    for row in rows[:1000]:  # each is an example moved by at most 0.2 (and rounding)
        assert (
            min(max(abs(a - b) for a, b in zip(row, example, strict=True)) for example in examples)
            <= 0.25 + 1e-9
        )


def test_bench_times_both_runs_with_a_real_worker(
    ctl: ModuleType, batch_env: dict[str, str]
) -> None:
    """`ctl bench` against the worker process itself (main.py), as in the stack."""
    env = {**os.environ, **batch_env, "PORT": str(free_port()), "PYTHONPATH": os.getcwd()}
    worker = subprocess.Popen(
        [sys.executable, "main.py"], cwd=ctl.__file__.rsplit("/", 1)[0], env=env,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        client = redis.Redis.from_url(batch_env["REDIS_URL"])
        while not client.keys("mlsp:worker:*:alive"):
            assert time.monotonic() < deadline, "the worker did not start"
            time.sleep(0.1)
        report = ctl.bench(ctl.Settings(), 600, seed=1, rounds=2)
    finally:
        worker.terminate()
        worker.wait(timeout=20)
    assert (report["rows"], report["rounds"]) == (600, 2)
    assert report["predict_rows_per_s_best"] >= report["predict_rows_per_s_median"] > 0
    assert report["db_only_rows_per_s_best"] >= report["db_only_rows_per_s_median"] > 0
    with psycopg.connect(batch_env["DATABASE_URL"]) as connection:
        assert connection.execute(
            "SELECT count(*), count(DISTINCT input_id) FROM batch_predictions"
        ).fetchone() == (600, 600)
        assert connection.execute(
            "SELECT DISTINCT model_name FROM batch_predictions"
        ).fetchall() == [("iris",)]


def test_the_scheduler_enqueues_a_run_every_interval(
    job: ModuleType, batch_env: dict[str, str]
) -> None:
    port = free_port()
    env = {**os.environ, **batch_env, "PORT": str(port), "BATCH_INTERVAL_S": "1",
           "PYTHONPATH": os.getcwd()}  # fmt: skip
    scheduler = subprocess.Popen(
        [sys.executable, "scheduler.py"], cwd=job.__file__.rsplit("/", 1)[0], env=env,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    queue = Queue("batch", connection=redis.Redis.from_url(batch_env["REDIS_URL"]))
    try:
        deadline = time.monotonic() + 20
        while queue.count < 2:  # the first at once, the next a second later
            assert time.monotonic() < deadline, "the scheduler enqueued no runs"
            time.sleep(0.1)
        ready = urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=5)
        assert ready.status == 200
    finally:
        scheduler.terminate()
        assert scheduler.wait(timeout=20) == 0
    jobs = queue.jobs
    assert {j.func_name for j in jobs} == {"jobs.start_run"}
    assert {j.kwargs["trigger"] for j in jobs} == {"cron"}


def test_a_refused_password_is_one_line_naming_the_ways_out(
    ctl: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise psycopg.OperationalError(
            'connection failed: FATAL:  password authentication failed for user "mlsp"'
        )

    monkeypatch.setattr(ctl, "connect", refuse)
    assert ctl.main(["migrate"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("ctl migrate: PostgreSQL refused the password")
    assert "make down PATTERN=<pattern> WIPE=1" in line
    assert "set POSTGRES_PASSWORD" in line
