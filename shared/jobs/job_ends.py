"""A job's end, told to the requests waiting for it: the long poll of ``GET /jobs/{id}?wait_s=``.

Without it a client learns that its job ended only by polling again and again, and each
poll costs the api a request and Redis a read. With it, one request waits (up to
``wait_s``) and is answered as soon as the job ends:

* **The worker says so.** In the same transaction in which RQ records a job's end
  (result, status, registries), :class:`shared.jobs.worker.LiveWorker` adds
  ``PUBLISH mlsp:jobs:ended:<queue> <job id>`` (:func:`publish_end`): no extra round trip,
  and the message goes out only if the end was recorded. A job that will be retried has
  not ended and is not announced. RQ's job format is untouched: a stock ``rq`` worker
  publishes nothing, and its jobs' waiters are answered at their timeout instead.
* **The announcement carries the answer.** A finished job's announcement is
  ``<job id> <the job resource as JSON>`` (up to :data:`MAX_CARRIED_BYTES`), the very
  resource a read of what that transaction records would give: a woken waiter answers
  it without reading Redis. Otherwise (failed, larger) it is the id alone, and the
  waiter reads the job.
* **The api listens once.** :class:`JobEnds` holds ONE pub/sub connection per process and
  queue (started by the first waiter) and a registry job id -> the futures of the requests
  waiting for it; a message wakes that job's futures, nothing polls Redis per waiter.
* **No lost wake-up.** A waiter registers its future first, then reads the job: a job that
  ended before the registration is seen by the read, one that ends after it wakes the
  future (:func:`wait_for_end`). Every answer is the job as read, or as announced, after
  the wait.
* **A job known not to have ended is not read first.** The api notes the jobs it queued
  while subscribed (:meth:`JobEnds.note_queued`) and forgets each when its end is
  announced: a job noted under the current subscription and not announced since has not
  ended, so its long poll waits at once, without the first read. A subscription made
  again, a job queued by another process or while unsubscribed, or one past the
  :data:`MAX_NOTED_JOBS` most recent, is read first as before. A noted job whose end is
  recorded without an announcement (a stock ``rq`` worker, ``rq`` tools cancelling it)
  is seen at the wait's timeout, like any waiter's job that nobody announces.
* **A dropped subscription loses nothing.** The listener makes it again (every
  ``reconnect_s`` until Redis answers) and then wakes every waiter, which reads its job
  again: an end announced while it was down is found by that read. A waiter whose job
  never gets announced is answered at its timeout with the job as it stands; the client
  polls again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import orjson
import redis
from redis import asyncio as aioredis
from redis.client import Pipeline
from rq.job import Job, JobStatus
from starlette.types import Receive

from shared.kit.metrics import JOB_WAITERS, JOB_WAITS

log = logging.getLogger("shared.jobs.job_ends")

#: How a long poll ended (``mlsp_job_waits_total{outcome}``).
WaitOutcome = Literal["ended", "timed_out", "disconnected", "refused"]
#: The job resource as :func:`shared.jobs.contract.job_view_with` makes it.
JobView = dict[str, Any]
#: The largest job resource an announcement carries; a larger one is read by the waiter.
MAX_CARRIED_BYTES = 8192
#: The most jobs queued by one api process that it remembers as not ended yet.
MAX_NOTED_JOBS = 20_000


def ended_channel(queue_name: str) -> str:
    """The pub/sub channel on which the ends of ``queue_name``'s jobs are announced."""
    return f"mlsp:jobs:ended:{queue_name}"


def has_ended(job: Job) -> bool:
    """True when ``job``'s end is being recorded: finished (no repeat left), failed with no
    retry left, stopped or canceled. A job about to be retried or repeated has not ended."""
    status = job.get_status(refresh=False)
    if status == JobStatus.FINISHED:
        return not job.repeats_left
    if status == JobStatus.FAILED:
        return not job.should_retry
    return status in (JobStatus.STOPPED, JobStatus.CANCELED)


def publish_end(job: Job, pipeline: Pipeline, view: JobView | None = None) -> None:
    """Announce ``job``'s end on its queue's channel, in ``pipeline`` (the transaction that
    records the end), when it has ended (:func:`has_ended`), with ``view``, its job
    resource as that transaction records it, when given (:func:`announcement`)."""
    if has_ended(job):
        pipeline.publish(ended_channel(job.origin), announcement(job.id, view))


def announcement(job_id: str, view: JobView | None) -> bytes:
    """The message announcing ``job_id``'s end: the id, then its resource ``view`` as JSON
    when given and at most :data:`MAX_CARRIED_BYTES` long (job ids hold no spaces)."""
    message = job_id.encode()
    if view is None:
        return message
    try:
        body = orjson.dumps(view, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError:  # a result JSON cannot hold: the waiter reads it (and says so)
        return message
    return message if len(body) > MAX_CARRIED_BYTES else message + b" " + body


def parse_announcement(data: bytes | str) -> tuple[str, JobView | None]:
    """The job id of an :func:`announcement`, and the resource it carries (or None)."""
    raw = data.encode() if isinstance(data, str) else data
    job_id, _, body = raw.partition(b" ")
    return job_id.decode(), orjson.loads(body) if body else None


class JobEnds:
    """The requests of one process waiting for jobs of one queue to end, and the one
    subscription that wakes them.

    ``max_waiters`` bounds the waiting requests (0: none wait). A parked waiter is a
    future and an open connection, no work: it leaves the api's in-flight count meant
    for work (``MAX_REQUESTS_IN_FLIGHT``, see :func:`wait_for_end`), so thousands can
    wait while the bound still protects the work. This bound is the one that keeps their
    number (file descriptors, memory) in check: past it a request is answered at once,
    as an ordinary poll, never refused.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        queue_name: str,
        *,
        max_waiters: int = 1000,
        reconnect_s: float = 1.0,
        ping_every_s: float = 5.0,
    ) -> None:
        self.client = client
        self.channel = ended_channel(queue_name)
        self.max_waiters = max_waiters
        self.reconnect_s = reconnect_s
        self.ping_every_s = ping_every_s
        #: True while the subscription is confirmed (an end announced now reaches us).
        self.subscribed = False
        self._waiters: dict[str, set[asyncio.Future[JobView | None]]] = {}
        self._count = 0
        # Subscriptions made so far; the jobs queued here while subscribed, not announced
        # ended since, each with the subscription it was noted under (oldest first).
        self._subscription = 0
        self._noted: dict[str, int] = {}
        self._listener: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def waiting(self) -> int:
        """The requests waiting now."""
        return self._count

    def note_queued(self, job_id: str) -> None:
        """``job_id`` is being queued by this process (noted before it is sent, since its end
        may be announced before the submit resumes): while this subscription lasts and its
        end is not announced, it has not ended (:meth:`not_ended`)."""
        if not self.subscribed:
            return
        if len(self._noted) >= MAX_NOTED_JOBS:  # forget the oldest: it is read again
            del self._noted[next(iter(self._noted))]
        self._noted[job_id] = self._subscription

    def forget(self, job_id: str) -> None:
        """``job_id`` was not queued after all (its submit failed)."""
        self._noted.pop(job_id, None)

    def not_ended(self, job_id: str) -> bool:
        """True when ``job_id`` surely has not ended: queued here under the current
        subscription, and no end of it announced since. False: nobody knows, read it."""
        return self.subscribed and self._noted.get(job_id) == self._subscription

    def register(self, job_id: str) -> asyncio.Future[JobView | None] | None:
        """A future woken when ``job_id`` is announced ended (its result: the job resource
        the announcement carried, or None: read it), or when the subscription is made
        again (None); None when ``max_waiters`` are waiting already, or once closed.
        Always :meth:`unregister` it."""
        if self._count >= self.max_waiters or self._closed:
            return None
        self._start_listening()
        future: asyncio.Future[JobView | None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(job_id, set()).add(future)
        self._count += 1
        JOB_WAITERS.inc()
        return future

    def unregister(self, job_id: str, future: asyncio.Future[JobView | None]) -> None:
        """Forget ``future`` (woken or not)."""
        futures = self._waiters.get(job_id)
        if futures is None or future not in futures:
            return
        futures.discard(future)
        if not futures:
            del self._waiters[job_id]
        self._count -= 1
        JOB_WAITERS.dec()
        if not future.done():
            future.cancel()

    async def aclose(self) -> None:
        """Stop listening and wake every waiter (each answers its job as it stands); no
        request waits from now on."""
        self._closed = True
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        self._wake_all()

    def _start_listening(self) -> None:
        if self._listener is None or self._listener.done():
            self._listener = asyncio.get_running_loop().create_task(
                self._listen(), name=f"listen {self.channel}"
            )

    def _wake(self, job_id: str, view: JobView | None = None) -> None:
        for future in self._waiters.get(job_id, ()):
            if not future.done():
                future.set_result(view)

    def _announced(self, data: bytes | str) -> None:
        """An end announced: the job is no longer noted, its waiters are woken."""
        job_id, view = parse_announcement(data)
        self._noted.pop(job_id, None)
        self._wake(job_id, view)

    def _wake_all(self) -> None:
        for job_id in list(self._waiters):
            self._wake(job_id)

    async def _listen(self) -> None:
        """Subscribe, wake the waiters of each job announced; subscribe again when dropped."""
        while True:
            try:
                await self._listen_once()
            except (redis.RedisError, OSError) as exc:
                log.warning("subscription to %s dropped (%s); subscribing again", self.channel, exc)
            except Exception:  # never leave the waiters without a listener
                log.exception("subscription to %s failed; subscribing again", self.channel)
            self.subscribed = False
            await asyncio.sleep(self.reconnect_s)

    async def _listen_once(self) -> None:
        pubsub = self.client.pubsub()
        try:
            await pubsub.subscribe(self.channel)
            silent_since = asyncio.get_running_loop().time()
            while True:
                message = await pubsub.get_message(timeout=self.ping_every_s)
                now = asyncio.get_running_loop().time()
                if message is None:  # nothing for a while: is the connection still there?
                    if now - silent_since > 3 * self.ping_every_s:
                        raise redis.ConnectionError("no answer to three pings")
                    await pubsub.ping()
                    continue
                silent_since = now
                if message["type"] == "message":
                    self._announced(message["data"])
                elif message["type"] == "subscribe":  # (again): ends may have been missed
                    self._subscription += 1
                    self._noted.clear()
                    self.subscribed = True
                    self._wake_all()
        finally:
            with contextlib.suppress(Exception):  # a broken connection may fail to close
                await pubsub.aclose()


async def wait_for_end(
    ends: JobEnds,
    job_id: str,
    read: Callable[[], Awaitable[JobView]],
    *,
    wait_s: float,
    receive: Receive,
    parked: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext,
) -> JobView:
    """The job resource of ``job_id`` (``read``) once it has ended, or after ``wait_s``.

    Each turn registers first, then reads, then waits: no end is missed between the read
    and the wait. The read is skipped when ``ends`` knows the job has not ended
    (:meth:`JobEnds.not_ended`), and the answer is the resource the announcement carried
    when it carried one. A wake-up that finds the job not ended (the subscription made
    again) is another turn. While it waits the request is ``parked`` (out of the in-flight count)
    and watches its ASGI ``receive`` for the client leaving: that ends the wait, and
    nothing stays registered. Past ``ends.max_waiters`` it answers at once.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    gone: asyncio.Task[None] | None = None
    try:
        while True:
            future = ends.register(job_id)
            if future is None:
                return _counted(await read(), "refused")
            try:
                view = None if ends.not_ended(job_id) else await read()
                remaining = deadline - loop.time()
                if view is not None and view["status"] in ("finished", "failed"):
                    return _counted(view, "ended")
                if remaining <= 0:
                    return _counted(view or await read(), "timed_out")
                if gone is None:
                    gone = loop.create_task(_client_gone(receive))
                with parked():
                    await asyncio.wait(
                        {future, gone}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                    )
                if gone.done():
                    return _counted(view or await read(), "disconnected")
                if not future.done():  # the deadline: the job as it stands now
                    return _counted(await read(), "timed_out")
                if (announced := future.result()) is not None:
                    return _counted(announced, "ended")
            finally:
                ends.unregister(job_id, future)
    finally:
        if gone is not None:
            gone.cancel()
            if gone.done() and not gone.cancelled():
                gone.exception()  # retrieved: a receive that failed is only a client gone


def _counted(view: JobView, outcome: WaitOutcome) -> JobView:
    JOB_WAITS.labels(outcome).inc()
    return view


async def _client_gone(receive: Receive) -> None:
    """Returns once the client of the ASGI request that ``receive`` serves has gone."""
    while (await receive())["type"] != "http.disconnect":
        pass
