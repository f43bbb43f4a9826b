"""Queue workers that prove they are alive and rescue the jobs of workers that died.

:class:`LiveWorker` is RQ's ``SimpleWorker`` (jobs run in the worker process,
so the model is loaded once, not per job) with three additions:

* a heartbeat thread refreshes ``mlsp:worker:<name>:alive`` every
  ``WORKER_HEARTBEAT_S`` with a TTL of three beats, busy or idle;
* during RQ's maintenance (every ``WORKER_MAINTENANCE_S``) each worker looks
  at the queue's started jobs: a job whose worker's key has been missing for
  more than three beats is marked expired, and RQ's own clean-up then retries
  it if it has retries left or fails it with ``AbandonedJobError``. So a job
  whose worker was killed is retried or failed within seconds, not after
  RQ's default of job timeout + 60 s, and never silently vanishes;
* a job taken off the queue but never started (its worker stopped or lost Redis in
  between) goes back to the head of the queue within seconds (RQ: after a minute);
* after losing Redis, it tries again every 2 s at most (RQ backs off up to 60 s);
* fewer Redis round trips per job: RQ's own worker heartbeat is pipelined and
  sent at most once a second, so is its check for ``rq suspend``, and an unchanged
  state is not written again;
* jobs whose function has a batch form (``batch_functions``) run several at a time:
  the job RQ hands it and up to ``WORKER_BATCH_SIZE - 1`` more already waiting run as
  one call, with RQ's bookkeeping for all of them in a few round trips
  (:mod:`shared.jobs.batches`); each still gets its own result, status, retries and
  callback, as RQ records them;
* a job's end (finished, or failed with no retry left; single or batched) is announced on
  ``mlsp:jobs:ended:<queue>`` in the transaction that records it, a finished job's with
  its job resource, so an api waiting for it answers at once without reading it
  (:mod:`shared.jobs.job_ends`);
* each job's log lines carry the request id of the request that queued it
  (``job.meta["request_id"]``), and jobs are counted and timed in Prometheus
  (``mlsp_jobs_total{queue,status}``, stages ``queue_wait`` and ``job``: the worker's
  time per job, a batch's time shared by its jobs; ``mlsp_worker_batch_jobs``).

:func:`run_worker` starts one, with ``/health/*`` and ``/metrics`` served by
:mod:`shared.kit.health_server` (ready while the heartbeat reaches Redis and the
service's own checks pass).
"""

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import redis
from prometheus_client import Counter, Histogram
from pydantic import Field
from redis.client import Pipeline
from rq import Queue, SimpleWorker, Worker
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.utils import as_text
from rq.worker import WorkerStatus

from shared.jobs.batches import BatchFunction, batchable, run_batch, settle, start_all, take_waiting
from shared.jobs.contract import job_body, public_status
from shared.jobs.job_ends import publish_end
from shared.kit.health_server import SyncCheck, start_health_server
from shared.kit.logs import request_id_var
from shared.kit.metrics import STAGE_LATENCY
from shared.kit.settings import ServiceSettings, _EnvSettings
from shared.stores.redis_client import RedisSettings, connect

log = logging.getLogger("shared.jobs.worker")

JOBS = Counter("mlsp_jobs", "Jobs run by this worker, by how they ended.", ["queue", "status"])
BATCH_SIZE = Histogram(
    "mlsp_worker_batch_jobs",
    "Jobs run together in one turn of a worker (jobs whose function has a batch form).",
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
# RQ blocks on the queue for (worker_ttl - 15) s between maintenance passes.
_RQ_DEQUEUE_MARGIN_S = 15


class WorkerSettings(_EnvSettings):
    """How a queue worker shows it is alive and watches the others."""

    worker_heartbeat_s: float = Field(1.0, gt=0, description="How often the liveness key is set.")
    worker_maintenance_s: int = Field(
        3, ge=1, description="How often an idle worker looks for jobs of dead workers."
    )
    worker_log_level: str = Field("WARNING", description="Level of RQ's own log lines.")
    worker_batch_size: int = Field(
        16,
        ge=1,
        description="Most jobs a worker runs as one batch: the job it takes and those already "
        "waiting (it never waits for more); 1: one job at a time.",
    )
    extra_work_ms: int = Field(
        0,
        ge=0,
        description="Extra time each inference takes, standing in for a heavier model (0: none).",
    )


def liveness_key(worker_name: str) -> str:
    """The Redis key a live worker keeps set."""
    return f"mlsp:worker:{worker_name}:alive"


def live_workers(queue: Queue) -> int:
    """How many workers listening on ``queue`` are alive (their liveness key is set)."""
    names = [worker.name for worker in Worker.all(queue=queue)]
    if not names:
        return 0
    with queue.connection.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.exists(liveness_key(name))
        return sum(pipe.execute())


def worker_name() -> str:
    """A name unique to this process that says which container it runs in."""
    return f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"


class Heartbeat:
    """Keeps a worker's liveness key set from a daemon thread."""

    def __init__(self, client: redis.Redis, key: str, interval_s: float) -> None:
        self.client = client
        self.key = key
        self.interval_s = interval_s
        self.ttl_s = 3 * interval_s
        self.last_ok: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._failing = False

    def beat(self) -> bool:
        """Set the key once; True when Redis took it."""
        try:
            self.client.set(self.key, "1", px=int(self.ttl_s * 1000))
        except redis.RedisError as exc:
            if not self._failing:
                log.warning("heartbeat failed: %s", exc)
            self._failing = True
            return False
        if self._failing:
            log.info("heartbeat reaches Redis again")
        self._failing = False
        self.last_ok = time.monotonic()
        return True

    def start(self) -> None:
        """Beat now, then every ``interval_s`` until :meth:`stop`."""
        self.beat()
        self._thread.start()

    def stop(self) -> None:
        """Stop beating and remove the key: this worker is gone."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval_s + 1)
        with contextlib.suppress(redis.RedisError):  # else the key expires by itself
            self.client.delete(self.key)

    def check(self) -> str | None:
        """Readiness: None while the last successful beat is recent."""
        if self.last_ok is None:
            return "no heartbeat has reached Redis yet"
        age = time.monotonic() - self.last_ok
        return None if age < self.ttl_s else f"no heartbeat reached Redis for {age:.1f} s"

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.beat()


# Moves one job id from the intermediate list back to the head of the queue, atomically:
# when two workers find the same stuck job, only the one whose LREM removed it pushes it.
_REQUEUE_SCRIPT = """
if redis.call('lrem', KEYS[1], 1, ARGV[1]) == 1 then
  redis.call('lpush', KEYS[2], ARGV[1])
  return 1
end
return 0
"""


def _requeue(keys: list[str], args: list[str], client: redis.Redis) -> bool:
    return bool(client.eval(_REQUEUE_SCRIPT, len(keys), *keys, *args))


class LiveWorker(SimpleWorker):
    """RQ's SimpleWorker with a heartbeat, dead-worker rescue, request ids and metrics."""

    # RQ doubles the wait between reconnection attempts up to 60 s: after a Redis outage of
    # a few seconds the workers then idled for up to a minute (found by `make chaos`).
    # Redis is local and reconnecting is cheap: try again every 2 s at most.
    max_connection_wait_time = 2.0

    def __init__(
        self,
        queues: Sequence[str],
        *,
        connection: redis.Redis,
        name: str,
        settings: WorkerSettings,
        log_jobs: bool = True,
        batch_functions: Mapping[str, BatchFunction] | None = None,
    ) -> None:
        super().__init__(
            list(queues),
            name=name,
            connection=connection,
            worker_ttl=settings.worker_maintenance_s + _RQ_DEQUEUE_MARGIN_S,
            maintenance_interval=settings.worker_maintenance_s,
        )
        self.grace_s = 3 * settings.worker_heartbeat_s
        self.log_jobs = log_jobs
        self.batch_functions = dict(batch_functions or {})
        self.batch_size = settings.worker_batch_size
        self._suspects: dict[str, float] = {}
        self._last_beat = 0.0
        self._last_suspension_check = -1.0

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        """RQ's worker heartbeat, in one round trip, and at most once a second by default.

        RQ beats three times per job, three commands each; the worker's key lives
        ``worker_ttl + 60`` s, so a beat a second keeps it as fresh for a third of
        the Redis round trips a job costs. Beats that ask for a TTL, or ride on a
        pipeline, are never skipped.
        """
        if timeout is None and pipeline is None:
            now = time.monotonic()
            if now - self._last_beat < 1.0:
                return
            self._last_beat = now
        if pipeline is not None:
            super().heartbeat(timeout, pipeline)
            return
        with self.connection.pipeline() as pipe:
            super().heartbeat(timeout, pipe)
            pipe.execute()

    def check_for_suspension(self, burst: bool) -> None:
        """RQ's check for ``rq suspend`` (a Redis read each turn), at most once a second."""
        now = time.monotonic()
        if now - self._last_suspension_check < 1.0:
            return
        self._last_suspension_check = now
        super().check_for_suspension(burst)

    def set_state(self, state: str, pipeline: Pipeline | None = None) -> None:
        """RQ's set_state, without a round trip when the state does not change."""
        if pipeline is None and state == self._state:
            return
        super().set_state(state, pipeline)

    def cleanup_execution(
        self, job: Job, pipeline: Pipeline, execution: Execution | None = None
    ) -> None:
        """RQ's clean-up of a job's execution, and the announcement of its end.

        RQ calls this inside the transaction that records how a job ended (success,
        failure, retry; :func:`shared.jobs.batches.finish_all` too), after the job's status
        is known: the ``PUBLISH`` rides in that transaction, no extra round trip, and is
        sent only if the end was recorded.
        """
        super().cleanup_execution(job, pipeline, execution)
        publish_end(job, pipeline, self._finished_view(job))

    def _finished_view(self, job: Job) -> dict[str, Any] | None:
        """The job resource a read of ``job`` will give once this transaction has recorded
        its success (None: not a kept success; the waiters read it). It rides in the
        announcement of its end, so an api waiting for it need not read it."""
        if job.get_status(refresh=False) != JobStatus.FINISHED:
            return None
        if job.get_result_ttl(self.default_result_ttl) == 0:  # RQ deletes the job
            return None
        return job_body(job, "finished", result=job._result)

    def clean_registries(self) -> None:
        """RQ's maintenance, after expiring the started jobs of dead workers and putting back
        the jobs a worker took off the queue but never started."""
        for queue in self.queues:
            self.expire_jobs_of_dead_workers(queue)
            self.requeue_jobs_taken_but_not_started(queue)
        super().clean_registries()

    def requeue_jobs_taken_but_not_started(self, queue: Queue) -> list[str]:
        """Put back at the head of ``queue`` the jobs stuck between dequeue and start.

        RQ moves a job id from the queue to an intermediate list (BLMOVE), then into the
        started registry. A worker stopped or cut off from Redis between the two leaves the
        job there, still "queued" but on no queue: RQ hands it to its failure handling only
        after a minute. A job seen there, not started, over two passes ``grace_s`` apart goes
        back to the queue instead (a Lua script, so only one worker moves it).
        """
        key = queue.intermediate_queue_key
        job_ids = [as_text(job_id) for job_id in self.connection.lrange(key, 0, -1)]
        started = {
            as_text(entry).partition(":")[0]
            for entry in self.connection.zrange(queue.started_job_registry.key, 0, -1)
        }
        now = time.monotonic()
        requeued = []
        for job_id in job_ids:
            suspect = f"dequeued:{job_id}"
            if job_id in started:
                self._suspects.pop(suspect, None)
                continue
            first_seen = self._suspects.setdefault(suspect, now)
            if now - first_seen >= self.grace_s and _requeue(
                keys=[key, queue.key], args=[job_id], client=self.connection
            ):
                self._suspects.pop(suspect, None)
                requeued.append(job_id)
                log.warning(
                    "job taken off the queue but never started (its worker stopped or lost "
                    "Redis in between); put back at the head of the queue",
                    extra={"job_id": job_id, "queue": queue.name},
                )
        return requeued

    def expire_jobs_of_dead_workers(self, queue: Queue) -> list[str]:
        """Mark expired the started jobs whose worker has stopped beating; their entries."""
        registry_key = queue.started_job_registry.key
        entries = [as_text(entry) for entry in self.connection.zrange(registry_key, 0, -1)]
        with self.connection.pipeline(transaction=False) as pipe:
            for entry in entries:
                pipe.hget(Execution.from_composite_key(entry, self.connection).key, "worker_name")
            owners = [as_text(name) if name else None for name in pipe.execute()]
        known = sorted({owner for owner in owners if owner})
        with self.connection.pipeline(transaction=False) as pipe:
            for owner in known:
                pipe.exists(liveness_key(owner))
            alive = dict(zip(known, pipe.execute(), strict=True))
        now = time.monotonic()
        expired = []
        for entry, owner in zip(entries, owners, strict=True):
            if owner is None or alive[owner]:
                self._suspects.pop(entry, None)
                continue
            first_missed = self._suspects.setdefault(entry, now)
            if now - first_missed >= self.grace_s:
                self.connection.zadd(registry_key, {entry: 0}, xx=True)
                self._suspects.pop(entry, None)
                expired.append(entry)
                log.warning(
                    "worker %s stopped beating while running a job; handing the job to RQ's "
                    "clean-up (retry if retries are left, else fail)",
                    owner,
                    extra={"job_id": entry.partition(":")[0], "dead_worker": owner},
                )
        for entry in set(self._suspects) - set(entries):
            if not entry.startswith("dequeued:"):
                del self._suspects[entry]
        return expired

    def execute_job(self, job: Job, queue: Queue) -> None:
        """Run ``job``, with the jobs of its function already waiting when it has a batch
        form; each with its request id in the log context, counted and timed."""
        batch_function = batchable(job, self.batch_functions)
        if batch_function is None or self.batch_size == 1:
            self._execute_one(job, queue)
            return
        started = time.perf_counter()
        jobs = [job]
        jobs += take_waiting(self, queue, self.batch_size - 1, batch_function, self.batch_functions)
        executions = start_all(self, jobs, queue)
        settle(self, queue, run_batch(self, jobs, executions, batch_function))
        self.executions.clear()
        self.set_state(WorkerStatus.IDLE)
        BATCH_SIZE.observe(len(jobs))
        share = (time.perf_counter() - started) / len(jobs)
        for each in jobs:  # the worker's time per job: the turn's time shared by its jobs
            self._account(each, queue, share)

    def _execute_one(self, job: Job, queue: Queue) -> None:
        token = request_id_var.set(job.meta.get("request_id"))
        started = time.perf_counter()
        try:
            super().execute_job(job, queue)
        finally:
            request_id_var.reset(token)
            self._account(job, queue, time.perf_counter() - started)

    def _account(self, job: Job, queue: Queue, seconds: float) -> None:
        """Time, count and log one job once the worker is done with it."""
        if job.enqueued_at is not None:
            started = (job.started_at or datetime.now(UTC)).replace(tzinfo=UTC)
            waited = (started - job.enqueued_at.replace(tzinfo=UTC)).total_seconds()
            STAGE_LATENCY.labels("queue_wait").observe(max(waited, 0.0))
        STAGE_LATENCY.labels("job").observe(seconds)  # the worker's time, for the breakdown
        outcome = public_status(job.get_status(refresh=False))
        if outcome == "queued":
            outcome = "retried"
        JOBS.labels(queue.name, outcome).inc()
        if self.log_jobs:
            token = request_id_var.set(job.meta.get("request_id"))
            log.info(
                "job %s",
                outcome,
                extra={
                    "job_id": job.id,
                    "queue": queue.name,
                    "worker": self.name,
                    "seconds": round(seconds, 6),
                },
            )
            request_id_var.reset(token)


def run_worker(
    queues: Sequence[str],
    service: ServiceSettings,
    redis_settings: RedisSettings,
    settings: WorkerSettings,
    checks: Mapping[str, SyncCheck] | None = None,
    *,
    batch_functions: Mapping[str, BatchFunction] | None = None,
) -> None:
    """Work ``queues`` until SIGTERM, with heartbeat, health server and metrics.

    ``batch_functions`` maps a job function's path to its batch form (see
    :mod:`shared.jobs.batches`): up to ``WORKER_BATCH_SIZE`` waiting jobs of it run as one call.
    """
    name = worker_name()
    heartbeat = Heartbeat(connect(redis_settings), liveness_key(name), settings.worker_heartbeat_s)
    heartbeat.start()
    start_health_server({"redis": heartbeat.check, **(checks or {})}, service.port)
    worker = LiveWorker(
        queues,
        connection=connect(redis_settings, client_name=name),
        name=name,
        settings=settings,
        log_jobs=service.access_log,
        batch_functions=batch_functions,
    )
    log.info("worker %s on queues %s (pid %d)", name, ",".join(queues), os.getpid())
    try:
        worker.work(logging_level=settings.worker_log_level)
    finally:
        heartbeat.stop()
