"""Several queued jobs in one worker turn: RQ's bookkeeping in one round trip per step.

RQ's worker takes a job, marks it started, runs it and records its end in about ten
Redis round trips, one job at a time. For a job as cheap as one row through
onnxruntime, those round trips are nearly all of its cost. A worker that has just
taken a job whose function has a *batch form* (``batch_functions``: the job's
function path -> a function taking every job's positional arguments and answering
one result per job) uses these helpers to:

1. :func:`take_waiting`: take up to N more jobs already waiting on the same queue,
   never waiting for more (one round trip moves them and reads them, a Lua script); a
   job of another function goes back to the head of the queue at once;
2. :func:`start_all`: mark them all started (RQ's executions, the started registry,
   each job's status) in one transaction;
3. :func:`run_batch`: run them as one call, under the shortest of their time limits;
   when that call fails, each job runs alone, so a bad job fails alone, with the
   error it would have had on its own, and RQ's own failure handling retries it
   (``Retry``) or fails it;
4. :func:`finish_all`: record every success (result, status, registries, the
   worker's counters) in one transaction, with exactly the writes RQ's
   ``handle_job_success`` makes, after each job's success callback has run, as RQ
   does.

Every record is RQ's own, written by RQ's own methods, so ``rq info``, the
registries, ``Job.fetch`` and the job resource read them as before. The batch form
must be free of side effects: when the batch fails, its jobs run again one by one.
"""

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.client import Pipeline
from rq import Queue, Retry
from rq.callbacks import execute_success_callback
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.rate_limit import release_slot
from rq.timeouts import JobTimeoutException
from rq.utils import as_text, now
from rq.worker import BaseWorker, WorkerStatus

from shared.kit.logs import request_id_var

#: Answers one result per call, in order, for the positional arguments of each job.
BatchFunction = Callable[[Sequence[tuple[Any, ...]]], Sequence[Any]]

# Moves up to ARGV[1] job ids from the head of the queue to its intermediate list, as RQ's
# dequeue moves each, and answers each id followed by its job hash (ARGV[2]: the hashes'
# key prefix): the move and the read in one round trip.
_TAKE_SCRIPT = """
local taken = {}
for i = 1, tonumber(ARGV[1]) do
  local job_id = redis.call('lmove', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
  if not job_id then break end
  taken[#taken + 1] = job_id
  taken[#taken + 1] = redis.call('hgetall', ARGV[2] .. job_id)
end
return taken
"""

# Moves job ids from the intermediate list back to the head of the queue, in their order,
# when they are still there (a rescue may have moved them already).
_PUT_BACK_SCRIPT = """
for i = #ARGV, 1, -1 do
  if redis.call('lrem', KEYS[1], 1, ARGV[i]) == 1 then
    redis.call('lpush', KEYS[2], ARGV[i])
  end
end
return 0
"""


@dataclass
class Outcome:
    """A job of a batch that ran: its execution and what it returned, or how it failed."""

    job: Job
    execution: Execution
    value: Any = None
    exc_info: tuple[Any, Any, Any] | None = None


def batchable(job: Job, batch_functions: dict[str, BatchFunction]) -> BatchFunction | None:
    """The batch form of ``job``'s function, when the job can run in a batch."""
    if job.kwargs or job.repeats_left:
        return None
    return batch_functions.get(job.func_name)


def take_waiting(
    worker: BaseWorker, queue: Queue, most: int, batch_function: BatchFunction,
    batch_functions: dict[str, BatchFunction],
) -> list[Job]:  # fmt: skip
    """Up to ``most`` jobs of ``batch_function`` already waiting on ``queue``; no waiting.

    They move to the queue's intermediate list as RQ's own dequeue moves them, so a
    worker lost now leaves them for the rescue of jobs taken but never started.
    Jobs of another function go back to the head of the queue, in their order.
    """
    jobs = _take(worker, queue, most)
    taken = [job for job in jobs if batchable(job, batch_functions) is batch_function]
    others = [job.id for job in jobs if batchable(job, batch_functions) is not batch_function]
    if others:
        worker.connection.eval(
            _PUT_BACK_SCRIPT, 2, queue.intermediate_queue_key, queue.key, *others
        )
    return taken


def _take(worker: BaseWorker, queue: Queue, most: int) -> list[Job]:
    """Up to ``most`` jobs moved from the head of ``queue`` to its intermediate list, and
    read, in one round trip (a job whose hash is gone is skipped, as RQ's dequeue skips it)."""
    if most <= 0:
        return []
    job_class = worker.job_class
    taken = worker.connection.eval(
        _TAKE_SCRIPT, 2, queue.key, queue.intermediate_queue_key, most, job_class.key_for("")
    )
    jobs = []
    for job_id, fields in zip(taken[::2], taken[1::2], strict=True):
        if not fields:
            continue
        job = job_class(as_text(job_id), connection=worker.connection, serializer=worker.serializer)
        job.restore(dict(zip(fields[::2], fields[1::2], strict=True)))  # as Job.fetch_many does
        jobs.append(job)
    return jobs


def start_all(worker: BaseWorker, jobs: Sequence[Job], queue: Queue) -> list[Execution]:
    """Mark ``jobs`` started, as RQ's ``prepare_execution`` and ``prepare_job_execution``
    do for one job, in one transaction; their executions, in order."""
    executions = []
    with worker.connection.pipeline() as pipe:
        ttls = []
        for job in jobs:
            ttl = worker.get_heartbeat_ttl(job)
            ttls.append(ttl)
            execution = Execution.create(job, ttl, pipeline=pipe, worker_name=worker.name)
            worker.executions[execution.id] = execution
            executions.append(execution)
            job.heartbeat(now(), ttl, pipeline=pipe)
            job.prepare_for_execution(worker.name, pipeline=pipe)
            pipe.persist(job.key)
            if len(worker.queues) == 1:
                pipe.lrem(queue.intermediate_queue_key, 1, job.id)
        worker.set_state(WorkerStatus.BUSY, pipeline=pipe)
        worker.heartbeat(max(ttls), pipeline=pipe)
        pipe.execute()
    return executions


def run_batch(
    worker: BaseWorker, jobs: Sequence[Job], executions: Sequence[Execution],
    batch_function: BatchFunction,
) -> list[Outcome]:  # fmt: skip
    """Run ``jobs`` as one call of ``batch_function``; alone, each, when that call fails."""
    timeout = min(job.timeout or worker.queue_class.DEFAULT_TIMEOUT for job in jobs)
    try:
        with worker.death_penalty_class(timeout, JobTimeoutException, job_id=jobs[0].id):
            values = list(batch_function([tuple(job.args) for job in jobs]))
        if len(values) != len(jobs):
            raise ValueError(f"the batch answered {len(values)} results for {len(jobs)} jobs")
    except Exception as exc:  # any failure: the jobs run alone and fail alone
        worker.log.info("a batch of %d jobs failed (%s); running them one by one", len(jobs), exc)
        return [
            run_alone(worker, job, execution)
            for job, execution in zip(jobs, executions, strict=True)
        ]
    ended = now()
    outcomes = []
    for job, execution, value in zip(jobs, executions, values, strict=True):
        job.ended_at = ended
        job._result = value
        outcomes.append(Outcome(job, execution, value))
    return outcomes


def run_alone(worker: BaseWorker, job: Job, execution: Execution) -> Outcome:
    """Run one job of a failed batch as RQ's worker runs it, under its own time limit,
    with its request id in the log context."""
    token = request_id_var.set(job.meta.get("request_id"))
    try:
        with worker.death_penalty_class(
            job.timeout or worker.queue_class.DEFAULT_TIMEOUT, JobTimeoutException, job_id=job.id
        ):
            value = job.perform()
    except Exception:  # recorded as the job's failure by RQ
        return Outcome(job, execution, exc_info=sys.exc_info())
    else:
        return Outcome(job, execution, value)
    finally:
        job.ended_at = now()
        request_id_var.reset(token)


def settle(worker: BaseWorker, queue: Queue, outcomes: Sequence[Outcome]) -> None:
    """Record how each job of a batch ended: successes together, the rest as RQ does.

    A failure, a ``Retry`` answer or a failing success callback goes through RQ's own
    per-job handling (failure callback, retry or failed registry).
    """
    succeeded = []
    for outcome in outcomes:
        job = outcome.job
        if outcome.exc_info is not None:
            worker._finalize_failure(job, queue, outcome.execution, outcome.exc_info)
            continue
        if isinstance(outcome.value, Retry):
            worker._finalize_success(job, queue, outcome.execution, outcome.value)
            continue
        job._status = JobStatus.FINISHED
        try:
            execute_success_callback(job, worker.death_penalty_class, outcome.value)
        except Exception:  # RQ fails a job whose success callback fails
            worker._finalize_failure(job, queue, outcome.execution, sys.exc_info())
            continue
        succeeded.append(outcome)
    if succeeded:
        finish_all(worker, queue, succeeded)


def finish_all(worker: BaseWorker, queue: Queue, outcomes: Sequence[Outcome]) -> None:
    """Record the successes of ``outcomes`` in one transaction, as RQ's ``handle_job_success``,
    and the worker idle again.

    RQ watches each job's dependents while it records the job's end; here each job's
    dependents are counted inside the same transaction instead, and the few jobs that
    have some get them enqueued after it commits. A dependent registering meanwhile
    watches its parent's hash, which the transaction changes, so it sees the parent
    finished when it tries again.
    """
    with worker.connection.pipeline() as pipe:
        for outcome in outcomes:
            _record_success(worker, pipe, outcome)
        worker.set_state(WorkerStatus.IDLE, pipeline=pipe)  # the last step of the turn
        for outcome in outcomes:
            pipe.scard(outcome.job.dependents_key)
        answers = pipe.execute()
    dependents = answers[-len(outcomes) :]
    for outcome, count in zip(outcomes, dependents, strict=True):
        if count:
            worker._enqueue_dependents_safely(queue, outcome.job)
        release_slot(outcome.job)
        outcome.job.send_webhooks(JobStatus.FINISHED)


def _record_success(worker: BaseWorker, pipe: Pipeline, outcome: Outcome) -> None:
    """The writes of RQ's ``handle_job_success`` for one job, onto ``pipe``."""
    job, execution = outcome.job, outcome.execution
    job.heartbeat(job.ended_at, job.success_callback_timeout, pipeline=pipe)
    worker.increment_successful_job_count(pipeline=pipe)
    worker.increment_total_working_time(job.ended_at - job.started_at, pipe)
    result_ttl = job.get_result_ttl(worker.default_result_ttl)
    if result_ttl != 0:
        job._handle_success(
            result_ttl,
            pipeline=pipe,
            worker_name=worker.name,
            execution_id=execution.id,
            execution_started_at=execution.created_at,
            execution_ended_at=job.ended_at,
        )
    job.cleanup(result_ttl, pipeline=pipe, remove_from_queue=False)
    job._status = JobStatus.FINISHED
    worker.cleanup_execution(job, pipeline=pipe, execution=execution)
