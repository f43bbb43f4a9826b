"""Job functions for the queue tests (RQ imports jobs by module path, so they live here),
and a worker that runs them in batches."""

import time

from redis import Redis
from rq import get_current_job
from rq.job import Job

from shared.jobs.batches import BatchFunction
from shared.jobs.worker import LiveWorker, WorkerSettings


def add(a: int, b: int) -> int:
    """A job that succeeds."""
    return a + b


def explode(message: str) -> None:
    """A job that fails with a message."""
    raise ValueError(message)


def sleep_then_add(seconds: float, a: int, b: int) -> int:
    """A slow job; records that it started."""
    job = get_current_job()
    if job is not None:
        job.meta["attempt_started"] = job.meta.get("attempt_started", 0) + 1
        job.save_meta()
    time.sleep(seconds)
    return a + b


def add_batch(calls: list[tuple[int, int]]) -> list[int]:
    """The batch form of :func:`add`: one sum per call; fails when any call is bad."""
    BATCHES.append(len(calls))
    return [a + b for a, b in calls]


def wrong_count_batch(calls: list[tuple[int, int]]) -> list[int]:
    """A broken batch form: one result too few."""
    return [a + b for a, b in calls][1:]


#: The sizes of the batches :func:`add_batch` ran (the tests' worker runs in-process).
BATCHES: list[int] = []


def record_callback(job: Job, connection: Redis, *args: object) -> None:
    """A success or failure callback: records the job's id in a Redis list."""
    kind = "success" if len(args) == 1 else "failure"
    connection.rpush(f"callbacks:{kind}", job.id)


def batching_worker(
    client: Redis, batch_size: int, batch_functions: dict[str, BatchFunction] | None = None
) -> LiveWorker:
    """A worker of queue ``test`` running up to ``batch_size`` jobs of :func:`add` at once."""
    return LiveWorker(
        ["test"],
        connection=client,
        name="w",
        settings=WorkerSettings(worker_batch_size=batch_size),
        log_jobs=False,
        batch_functions={"tests.shared.jobfuncs.add": add_batch}
        if batch_functions is None
        else batch_functions,
    )
