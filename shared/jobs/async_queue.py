"""RQ jobs submitted and read from the event loop without ever waiting on Redis in it.

RQ's own calls are synchronous (redis-py): an ``async`` handler calling
``Queue.enqueue_call`` or ``Job.fetch`` stops every other request of the
process for its Redis round trips, so concurrent submits queue behind each
other. :class:`JobQueue` does the same work over ``redis.asyncio``:

* **Submits share round trips.** RQ itself builds each job: ``enqueue_call``
  runs against a pipeline that only records commands (it never connects), so
  the job hash, the queue's list push and the set of queues are exactly what
  the pinned RQ writes; stock ``rq info``, the registries and the stock worker
  read them as their own. The commands of every submit of one event-loop turn
  then go to Redis in one ``MULTI``/``EXEC`` (the way
  web-single's ``TurnBatcher`` shares a model run): one round trip
  for the turn, which also reads the queue's depth back. Nothing waits for
  requests that have not arrived: a lone submit is sent at the end of its own turn.
* **A bounded queue costs no extra round trip while it has room.** The depth
  read back by the last turn (or by ``publish_depth``) decides; Redis is asked
  again only when that figure says the turn's jobs would not fit, so nothing is
  refused on an old figure. Workers only shorten the queue, so the old figure
  errs on the full side; another api process adding jobs meanwhile can take the
  queue past its bound by at most one turn's submits of each process.
* **A job is read in one round trip**: its hash and its latest result (one
  ``HGETALL`` and one ``XREVRANGE`` in a pipeline), turned into RQ's
  :class:`~rq.job.Job` and :class:`~rq.results.Result` by RQ's own code.
* **A job's end can be waited for** (:attr:`JobQueue.ends`, :mod:`shared.jobs.job_ends`):
  one pub/sub subscription per process wakes the requests waiting for it; the jobs this
  process queued are noted there, so a long poll of one that has not ended waits at once.

A batch shares its fate: when Redis fails, every submit of that turn gets the
error (503/504 through :func:`shared.stores.redis_client.redis_errors`), and the
``EXEC`` applies all of the turn's jobs or none of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import redis
from redis import asyncio as aioredis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, parse_job_id
from rq.results import Result

from shared.jobs.contract import JOB_ID, QueueFull
from shared.jobs.job_ends import JobEnds
from shared.kit.errors import NotFound
from shared.kit.metrics import QUEUE_DEPTH

#: One recorded Redis command: its arguments and redis-py's options for it.
Command = tuple[tuple[Any, ...], dict[str, Any]]
# A submit waiting for its turn's round trip: its recorded commands, and its outcome.
_Waiting = tuple[list[Command], asyncio.Future[None]]


class JobQueue:
    """An RQ queue on an asyncio Redis client: turn-batched submits, one-trip job reads,
    and the waits for its jobs' ends (``max_job_waiters`` at once, :attr:`ends`).

    Close it with :meth:`aclose` before its client.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        name: str,
        *,
        max_queued_jobs: int = 0,
        queue_full_retry_after_s: int = 2,
        max_job_waiters: int = 1000,
    ) -> None:
        self.client = client
        # RQ builds its jobs' commands on this client's pipelines, which are never executed.
        # It has nowhere to connect to: a call that RQ made on it directly would fail loudly.
        self._recorder = redis.Redis(unix_socket_path="/nonexistent/rq-command-recorder")
        self.queue = Queue(name, connection=self._recorder)
        self.max_queued_jobs = max_queued_jobs
        self.queue_full_retry_after_s = queue_full_retry_after_s
        self._waiting: list[_Waiting] = []
        self._sending: set[asyncio.Task[None]] = set()
        self._reading_version: asyncio.Future[dict[str, Any]] | None = None
        self._last_depth: int | None = None
        #: The requests waiting for this queue's jobs to end.
        self.ends = JobEnds(client, name, max_waiters=max_job_waiters)

    @property
    def name(self) -> str:
        """The RQ queue's name."""
        return self.queue.name

    async def enqueue_call(self, func: str | Callable[..., Any], **options: Any) -> Job:
        """Queue a job as ``Queue.enqueue_call(func, **options)`` would, sent with its turn's.

        Raises :class:`shared.jobs.contract.QueueFull` when the queue holds ``max_queued_jobs``
        waiting jobs, and Redis's errors as they are (wrap in ``redis_errors``).
        """
        if self.queue.redis_server_version is None:
            self.queue.redis_server_version = await self._server_version()
        recorder = self._recorder.pipeline()
        job = self.queue.enqueue_call(func, pipeline=recorder, **options)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._waiting.append((list(recorder.command_stack), done))
        if len(self._waiting) == 1:  # the first of its turn: send them all once the turn ends
            task = loop.create_task(self._send_waiting())
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
        # Noted before it is sent: its end may be announced (and heard) before this resumes.
        self.ends.note_queued(job.id)
        try:
            await done
        except BaseException:
            self.ends.forget(job.id)
            raise
        return job

    async def fetch(self, job_id: str) -> tuple[Job, Result | None]:
        """The job called ``job_id`` and its latest result, or :class:`NotFound`."""
        if not JOB_ID.match(job_id):
            raise NotFound(f"no job {job_id!r}", field="job_id")
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(Job.key_for(job_id))
        pipe.xrevrange(Result.get_key(job_id), "+", "-", count=1)
        data, latest = await pipe.execute()
        job = Job(parse_job_id(job_id), connection=self._recorder)
        try:
            if not data:
                raise NoSuchJobError(job_id)
            job.restore(data)
        except NoSuchJobError:
            raise NotFound(
                f"no job {job_id!r}: never submitted, or its result expired", field="job_id"
            ) from None
        if not latest:
            return job, None
        result_id, payload = latest[0]
        return job, Result.restore(job.id, result_id.decode(), payload, connection=self._recorder)

    async def depth(self) -> int:
        """Jobs waiting in the queue now (also published as ``mlsp_queue_depth``)."""
        waiting = await self.client.llen(self.queue.key)
        self._saw_depth(waiting)
        return waiting

    def _saw_depth(self, waiting: int) -> None:
        self._last_depth = waiting
        QUEUE_DEPTH.labels(self.name).set(waiting)

    async def _room(self, wanted: int) -> int | None:
        """Places left in a bounded queue (None: no bound), from the last depth read while
        ``wanted`` jobs fit in it, from Redis when they do not (or none was read yet)."""
        if not self.max_queued_jobs:
            return None
        waiting = self._last_depth
        if waiting is None or waiting + wanted > self.max_queued_jobs:
            waiting = await self.depth()
        return max(0, self.max_queued_jobs - waiting)

    async def publish_depth(self, interval_s: float = 5.0) -> None:
        """Read the queue's depth into ``mlsp_queue_depth`` every ``interval_s`` until cancelled.

        Submits publish it too; this keeps the gauge true while nobody submits
        (workers drain the queue). A failed read leaves NaN until the next one.
        """
        while True:
            try:
                await self.depth()
            except redis.RedisError:
                QUEUE_DEPTH.labels(self.name).set(float("nan"))
            await asyncio.sleep(interval_s)

    async def aclose(self) -> None:
        """Stop listening for jobs' ends; every waiting request answers its job as it stands."""
        await self.ends.aclose()

    async def _server_version(self) -> tuple[int, int, int]:
        """Redis's version (RQ records it in each job), read once for all the first submits."""
        if self._reading_version is None or self._reading_version.done():
            self._reading_version = asyncio.ensure_future(self.client.info("server"))
        version = str((await asyncio.shield(self._reading_version))["redis_version"])
        major, minor, patch = [*(int(part) for part in version.split(".")[:3]), 0, 0][:3]
        return major, minor, patch

    async def _send_waiting(self) -> None:
        batch: list[_Waiting] = []
        try:
            free = await self._room(len(self._waiting))
            batch, self._waiting = self._waiting, []
            if free is not None and free < len(batch):
                waiting = self.max_queued_jobs - free
                for _, done in batch[free:]:
                    _settle(done, QueueFull(waiting, self.queue_full_retry_after_s))
                batch = batch[:free]
            if batch:
                await self._send(batch)
        except BaseException as exc:  # each submit of the turn gets the failure
            if not batch:
                batch, self._waiting = self._waiting, []
            for _, done in batch:
                _settle(done, exc)
            if not isinstance(exc, Exception):
                raise
        else:
            for _, done in batch:
                _settle(done, None)

    async def _send(self, batch: list[_Waiting]) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            for commands, _ in batch:
                for args, options in commands:
                    pipe.execute_command(*args, **options)
            pipe.llen(self.queue.key)
            results = await pipe.execute()
        self._saw_depth(results[-1])


def _settle(done: asyncio.Future[None], outcome: BaseException | None) -> None:
    if done.done():  # the request went away (client gone, cancelled)
        return
    if outcome is None:
        done.set_result(None)
    elif isinstance(outcome, asyncio.CancelledError):
        done.cancel()
    else:
        done.set_exception(outcome)
