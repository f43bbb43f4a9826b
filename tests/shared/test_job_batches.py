"""Several queued jobs in one worker turn (shared.jobs.batches), on a real Redis: each job
keeps its own result, status, retries and callback, recorded as RQ records them."""

from collections.abc import Callable

import pytest
import redis
from rq import Callback, Queue, Retry, Worker
from rq.job import Job, JobStatus
from rq.results import Result

from shared.jobs.batches import batchable, take_waiting
from shared.jobs.contract import fetch_job, job_view
from shared.jobs.worker import LiveWorker
from tests.shared import jobfuncs

ADD = "tests.shared.jobfuncs.add"


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


@pytest.fixture
def queue(client: redis.Redis) -> Queue:
    return Queue("test", connection=client)


@pytest.fixture
def run(client: redis.Redis) -> Callable[..., LiveWorker]:
    """Work the queue until it is empty with a worker of ``batch_size`` (and batch forms)."""

    def work(batch_size: int = 16, batch_functions: dict | None = None) -> LiveWorker:
        jobfuncs.BATCHES.clear()
        worker = jobfuncs.batching_worker(client, batch_size, batch_functions)
        worker.work(burst=True)
        return worker

    return work


def test_waiting_jobs_run_as_one_batch_each_with_its_own_result(
    queue: Queue, run: Callable[..., LiveWorker]
) -> None:
    jobs = [queue.enqueue(ADD, i, 100) for i in range(10)]
    worker = run(batch_size=4)
    assert jobfuncs.BATCHES == [4, 4, 2]
    for i, job in enumerate(jobs):
        view = job_view(fetch_job(queue.connection, job.id))
        assert view["status"] == "finished"
        assert view["result"] == i + 100
        assert view["ended_at"] is not None
    assert sorted(queue.finished_job_registry.get_job_ids()) == sorted(job.id for job in jobs)
    assert queue.started_job_registry.count == 0
    assert queue.count == 0
    assert queue.connection.llen(queue.intermediate_queue_key) == 0
    stored = Worker.find_by_key(worker.key, connection=queue.connection)
    assert stored is not None
    assert stored.successful_job_count == 10


def test_a_batch_records_what_one_job_at_a_time_records(
    client: redis.Redis, queue: Queue, run: Callable[..., LiveWorker]
) -> None:
    """The same jobs through RQ's own path and through a batch leave the same records."""

    def records(batch_size: int) -> list[tuple]:
        client.flushdb()
        ids = [queue.enqueue(ADD, i, 1, result_ttl=600, retry=Retry(max=2)).id for i in range(3)]
        run(batch_size=batch_size)
        seen = []
        for job_id in ids:
            job = Job.fetch(job_id, connection=client)
            result = job.latest_result()
            assert result is not None
            fields = sorted(key.decode() for key in client.hkeys(job.key))
            seen.append((job.get_status(), fields, result.type, result.return_value, job.ttl))
            assert 0 < client.ttl(job.key) <= 600
        finished = sorted(queue.finished_job_registry.get_job_ids())
        registries = (finished, queue.started_job_registry.count)
        keys = [key.decode() for key in client.scan_iter()]
        for number, job_id in enumerate(ids):
            keys = [key.replace(job_id, f"<job {number}>") for key in keys]
        return [*seen, registries == (sorted(ids), 0), sorted(keys)]

    one_at_a_time = records(batch_size=1)
    assert jobfuncs.BATCHES == []
    batched = records(batch_size=16)
    assert jobfuncs.BATCHES == [3]
    assert batched == one_at_a_time


def test_one_bad_job_fails_alone_with_its_own_error(
    queue: Queue, run: Callable[..., LiveWorker]
) -> None:
    good = [queue.enqueue(ADD, 1, 2), queue.enqueue(ADD, 3, 4)]
    bad = queue.enqueue(ADD, 1, "two")
    run()
    assert [job_view(fetch_job(queue.connection, job.id))["result"] for job in good] == [3, 7]
    view = job_view(fetch_job(queue.connection, bad.id))
    assert view["status"] == "failed"
    assert view["error"]["code"] == "job_error"
    assert view["error"]["message"].startswith("TypeError: unsupported operand")
    assert queue.failed_job_registry.get_job_ids() == [bad.id]


def test_a_batch_form_that_answers_the_wrong_count_falls_back_to_one_by_one(
    queue: Queue, run: Callable[..., LiveWorker]
) -> None:
    jobs = [queue.enqueue(ADD, i, i) for i in range(3)]
    run(batch_functions={ADD: jobfuncs.wrong_count_batch})
    assert [job_view(fetch_job(queue.connection, j.id))["result"] for j in jobs] == [0, 2, 4]


def test_a_failing_job_of_a_batch_is_retried_per_its_policy(
    queue: Queue, run: Callable[..., LiveWorker]
) -> None:
    good = queue.enqueue(ADD, 1, 1)
    bad = queue.enqueue(ADD, 1, "x", retry=Retry(max=1))
    run()  # burst: the retry is queued again and taken in the same run
    bad.refresh()
    assert bad.get_status() == JobStatus.FAILED
    assert bad.retries_left == 0
    assert [r.type for r in bad.results()] == [Result.Type.FAILED]
    assert job_view(fetch_job(queue.connection, good.id))["result"] == 2


def test_callbacks_fire_once_each(
    client: redis.Redis, queue: Queue, run: Callable[..., LiveWorker]
) -> None:
    callbacks = {
        "on_success": Callback(jobfuncs.record_callback),
        "on_failure": Callback(jobfuncs.record_callback),
    }
    good = [queue.enqueue(ADD, i, 1, **callbacks) for i in range(5)]
    bad = queue.enqueue(ADD, 1, "x", **callbacks)
    run()
    succeeded = [job_id.decode() for job_id in client.lrange("callbacks:success", 0, -1)]
    failed = [job_id.decode() for job_id in client.lrange("callbacks:failure", 0, -1)]
    assert sorted(succeeded) == sorted(job.id for job in good)
    assert failed == [bad.id]


def test_a_jobs_dependents_run_after_it_in_a_batch(
    queue: Queue, run: Callable[..., LiveWorker]
) -> None:
    parent = queue.enqueue(ADD, 1, 1)
    sibling = queue.enqueue(ADD, 2, 2)
    child = queue.enqueue(ADD, 3, 3, depends_on=parent)
    assert child.get_status() == JobStatus.DEFERRED
    run()
    for job, answer in ((parent, 2), (sibling, 4), (child, 6)):
        assert job_view(fetch_job(queue.connection, job.id))["result"] == answer


def test_jobs_of_other_functions_wait_for_their_turn(
    queue: Queue, run: Callable[..., LiveWorker]
) -> None:
    first = queue.enqueue(ADD, 1, 1)
    other = queue.enqueue("tests.shared.jobfuncs.explode", "not batched")
    last = queue.enqueue(ADD, 2, 2)
    run()
    assert jobfuncs.BATCHES == [2]
    assert job_view(fetch_job(queue.connection, first.id))["result"] == 2
    assert job_view(fetch_job(queue.connection, last.id))["result"] == 4
    assert job_view(fetch_job(queue.connection, other.id))["error"]["message"] == (
        "ValueError: not batched"
    )


def test_waiting_jobs_are_moved_and_read_in_one_round_trip(
    client: redis.Redis, queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = [queue.enqueue(ADD, i, 1, meta={"n": i}) for i in range(3)]
    gone = queue.enqueue(ADD, 9, 9)
    last = queue.enqueue(ADD, 5, 5)
    client.delete(gone.key)  # its hash expired or was deleted: skipped, as RQ's dequeue does
    worker = jobfuncs.batching_worker(client, 16, None)
    batch_function = batchable(jobs[0], worker.batch_functions)
    assert batch_function is not None
    commands: list[object] = []
    execute = client.execute_command

    def counted(*args: object, **options: object) -> object:
        commands.append(args[0])
        return execute(*args, **options)

    monkeypatch.setattr(client, "execute_command", counted)
    taken = take_waiting(worker, queue, 10, batch_function, worker.batch_functions)
    assert len(commands) == 1  # the script: moves and reads them all
    assert [job.id for job in taken] == [*(job.id for job in jobs), last.id]
    assert [(job.args, job.meta) for job in taken[:3]] == [((i, 1), {"n": i}) for i in range(3)]
    assert [job.get_status(refresh=False) for job in taken] == [JobStatus.QUEUED] * 4
    assert queue.count == 0
    # Where RQ's dequeue leaves a taken job until it starts (the rescue watches it).
    assert [job_id.decode() for job_id in client.lrange(queue.intermediate_queue_key, 0, -1)] == [
        *(job.id for job in jobs),
        gone.id,
        last.id,
    ]
