"""Long polls of a job (``GET /jobs/{id}?wait_s=``): woken by the worker's announcement,
answered at the timeout otherwise, never lost, never leaked; and the worker's announcements.

The app is served in the test's event loop (httpx's ASGI transport); a worker runs in the
same thread when the test says so (RQ's worker needs the main thread for its signals),
which holds the loop for that time: the waiters are parked, and the announcement waits in
the subscription's socket until the loop reads it.
"""

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest
import redis
from prometheus_client import REGISTRY
from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from rq import Queue, SimpleWorker
from rq import Retry as JobRetry
from rq.job import Job, JobStatus

from shared.jobs.async_queue import JobQueue
from shared.jobs.contract import add_job_route, job_view_with
from shared.jobs.job_ends import (
    announcement,
    ended_channel,
    has_ended,
    parse_announcement,
    wait_for_end,
)
from shared.kit.app import ServiceApp, create_app
from shared.kit.settings import ServiceSettings
from tests.shared.jobfuncs import batching_worker
from tests.shared.test_jobs import run_burst

ADD = "tests.shared.jobfuncs.add"


@dataclass
class Served:
    """The job route of an app on queue ``test``, a client for it, and Redis."""

    app: ServiceApp
    jobs: JobQueue
    http: httpx.AsyncClient
    redis: redis.Redis

    def enqueue(self, *args: object, **options: object) -> Job:
        return Queue("test", connection=self.redis).enqueue(ADD, *args, **options)

    def get(self, job: Job, wait_s: object) -> "asyncio.Task[httpx.Response]":
        """The long poll of ``job``, under way."""
        return asyncio.ensure_future(self.http.get(f"/jobs/{job.id}", params={"wait_s": wait_s}))

    async def subscribe(self) -> None:
        """Make the api's subscription to the ends now (the first waiter would)."""
        ends = self.jobs.ends
        ends.unregister("nothing", ends.register("nothing"))
        await until(lambda: ends.subscribed)

    async def parked(self, job: Job, wait_s: float) -> "asyncio.Task[httpx.Response]":
        """The long poll of ``job`` once it waits, the subscription made beforehand (so
        only an announcement wakes it)."""
        ends = self.jobs.ends
        await self.subscribe()
        answer = self.get(job, wait_s)
        await until(lambda: ends.waiting == 1 and self.app.in_flight.in_flight == 0)
        return answer


def waits(outcome: str) -> float:
    """``mlsp_job_waits_total{outcome}`` now."""
    return REGISTRY.get_sample_value("mlsp_job_waits_total", {"outcome": outcome}) or 0.0


def waiters() -> float:
    """``mlsp_job_waiters`` now."""
    return REGISTRY.get_sample_value("mlsp_job_waiters") or 0.0


async def until(condition: Callable[[], bool], timeout_s: float = 10) -> None:
    """Let the loop run until ``condition`` holds; fail after ``timeout_s``."""
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.005)


def make_served(redis_url: str, **options: int) -> Served:
    settings = ServiceSettings(max_requests_in_flight=options.pop("max_in_flight", 0))
    app = create_app(settings, title="t")
    jobs = JobQueue(aioredis.Redis.from_url(redis_url), "test", **options)
    add_job_route(app, jobs, max_wait_s=5)
    transport = httpx.ASGITransport(app=app)
    http = httpx.AsyncClient(transport=transport, base_url="http://api")
    return Served(app, jobs, http, redis.Redis.from_url(redis_url))


@pytest.fixture
async def served(redis_url: str) -> AsyncIterator[Served]:
    served = make_served(redis_url)
    yield served
    await served.http.aclose()
    await served.jobs.aclose()
    await served.jobs.client.aclose()


async def test_a_wait_ends_when_the_worker_announces_the_end(served: Served) -> None:
    job = served.enqueue(2, 3)
    ended, timed_out = waits("ended"), waits("timed_out")
    answer = await served.parked(job, 5)
    assert waiters() >= 1
    run_burst(served.redis)  # LiveWorker: announces the end
    response = await asyncio.wait_for(answer, 2.5)  # woken: long before its 5 s
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["result"]) == ("finished", 5)
    assert (waits("ended") - ended, waits("timed_out") - timed_out) == (1, 0)
    assert served.jobs.ends.waiting == 0


@pytest.mark.parametrize("status", ["queued", "started"])
async def test_a_wait_that_times_out_answers_the_job_as_it_stands(
    served: Served, status: str
) -> None:
    job = served.enqueue(1, 1)
    if status == "started":
        job.set_status(JobStatus.STARTED)
    timed_out = waits("timed_out")
    response = await served.get(job, 0.05)
    assert (response.status_code, response.json()["status"]) == (200, status)
    assert response.json()["result"] is None
    assert waits("timed_out") - timed_out == 1
    assert served.jobs.ends.waiting == 0


async def test_an_end_between_the_read_and_the_wait_is_not_missed(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job ends, and the api takes the announcement, after the waiter's read saw it
    queued but before it waits: the registration came first, so it is woken."""
    job = served.enqueue(4, 4)
    ends = served.jobs.ends
    ends.unregister(job.id, ends.register(job.id))  # the subscription, made beforehand
    await until(lambda: ends.subscribed)
    announced = asyncio.Event()
    wake = ends._wake

    def wake_and_tell(job_id: str) -> None:
        wake(job_id)
        announced.set()

    monkeypatch.setattr(ends, "_wake", wake_and_tell)
    reads = []

    async def read_then_end() -> dict[str, object]:
        view = job_view_with(*await served.jobs.fetch(job.id))
        if not reads:  # the first read sees it queued; then it ends, the api hears of it
            run_burst(served.redis)
            await asyncio.wait_for(announced.wait(), 5)
        reads.append(view["status"])
        return view

    view = await asyncio.wait_for(  # woken: long before its 5 s
        wait_for_end(ends, job.id, read_then_end, wait_s=5, receive=never_gone), 2.5
    )
    assert (view["status"], view["result"]) == ("finished", 8)
    assert reads == ["queued", "finished"]
    assert ends.waiting == 0


async def test_a_job_ended_before_the_request_is_answered_at_once(served: Served) -> None:
    job = served.enqueue(1, 2)
    SimpleWorker(["test"], connection=served.redis).work(burst=True)  # stock: no announcement
    ended = waits("ended")
    response = await served.get(job, 5)
    assert (response.json()["status"], response.json()["result"]) == ("finished", 3)
    assert waits("ended") - ended == 1


async def test_a_stock_rq_worker_announces_nothing_and_the_wait_answers_at_its_timeout(
    served: Served,
) -> None:
    job = served.enqueue(5, 5)
    timed_out = waits("timed_out")
    answer = await served.parked(job, 0.3)
    SimpleWorker(["test"], connection=served.redis).work(burst=True)
    response = await answer
    assert (response.json()["status"], response.json()["result"]) == ("finished", 10)
    assert waits("timed_out") - timed_out == 1  # not woken: nothing was announced
    assert served.jobs.ends.waiting == 0


@pytest.mark.parametrize("wait_s", ["-1", "soon", "nan", "inf", "", "5.5", "60"])
async def test_a_bad_wait_is_a_422_naming_wait_s(served: Served, wait_s: str) -> None:
    job = served.enqueue(1, 1)
    response = await served.http.get(f"/jobs/{job.id}", params={"wait_s": wait_s})
    assert response.status_code == 422
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("invalid_input", "wait_s")
    assert served.jobs.ends.waiting == 0


async def test_no_wait_answers_at_once_and_the_docs_name_wait_s(served: Served) -> None:
    job = served.enqueue(1, 1)
    for params in ({}, {"wait_s": "0"}):
        response = await served.http.get(f"/jobs/{job.id}", params=params)
        assert response.json()["status"] == "queued"
    operation = (await served.http.get("/openapi.json")).json()["paths"]["/jobs/{job_id}"]["get"]
    wait_s = next(p for p in operation["parameters"] if p["name"] == "wait_s")
    assert (wait_s["in"], wait_s["schema"]["maximum"]) == ("query", 5)


async def test_a_dropped_subscription_neither_hangs_a_waiter_nor_stays_dropped(
    served: Served,
) -> None:
    job = served.enqueue(3, 3)
    ends = served.jobs.ends
    answer = served.get(job, 0.5)
    await until(lambda: ends.waiting == 1 and ends.subscribed)
    served.redis.client_kill_filter(_type="pubsub")
    response = await asyncio.wait_for(answer, 10)  # answered by its timeout at the latest
    assert response.json()["status"] == "queued"
    # Subscribed again: the next end announced wakes its waiter.
    await until(lambda: served.redis.pubsub_numsub(ends.channel)[0][1] == 1)
    ended = waits("ended")
    answer = await served.parked(job, 5)
    run_burst(served.redis)
    assert (await asyncio.wait_for(answer, 2.5)).json()["status"] == "finished"
    assert waits("ended") - ended == 1


async def test_redis_down_while_waiting_answers_503_and_leaks_nothing(served: Served) -> None:
    job = served.enqueue(3, 3)
    ends = served.jobs.ends
    answer = served.get(job, 0.3)
    await until(lambda: ends.waiting == 1)
    down = aioredis.Redis(port=1, retry=Retry(NoBackoff(), 0))  # for the read after the wait
    up, served.jobs.client = served.jobs.client, down
    try:
        response = await answer
    finally:
        await served.jobs.client.aclose()
        served.jobs.client = up
    assert (response.status_code, response.json()["error"]["code"]) == (
        503,
        "dependency_unavailable",
    )
    assert ends.waiting == 0


async def test_a_client_that_leaves_while_waiting_leaks_no_future(served: Served) -> None:
    job = served.enqueue(1, 1)
    ends = served.jobs.ends
    gone = asyncio.Event()
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        if not sent and not gone.is_set():
            sent.append({})
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    disconnected = waits("disconnected")
    scope = asgi_get(f"/jobs/{job.id}", b"wait_s=5")
    request = asyncio.ensure_future(served.app(scope, receive, send))
    await until(lambda: ends.waiting == 1)
    gone.set()
    await asyncio.wait_for(request, 10)
    assert ends.waiting == 0
    assert waits("disconnected") - disconnected == 1
    # A request cancelled while waiting (the server stopping) leaves nothing either.
    request = asyncio.ensure_future(served.app(scope, never_gone_after_request(), send))
    await until(lambda: ends.waiting == 1)
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    assert ends.waiting == 0


async def test_closing_the_queue_answers_its_waiters_at_once(served: Served) -> None:
    job = served.enqueue(1, 1)
    answer = await served.parked(job, 5)
    await served.jobs.aclose()  # the api stopping
    response = await asyncio.wait_for(answer, 2.5)
    assert (response.status_code, response.json()["status"]) == (200, "queued")
    assert served.jobs.ends.waiting == 0
    assert served.jobs.ends.register(job.id) is None  # and nobody waits from now on


async def test_waiters_do_not_take_the_places_of_work_and_have_their_own_bound(
    redis_url: str,
) -> None:
    served = make_served(redis_url, max_in_flight=1, max_job_waiters=1)
    try:
        waiting, other = served.enqueue(1, 1), served.enqueue(2, 2)
        answer = served.get(waiting, 5)
        await until(lambda: served.jobs.ends.waiting == 1)
        await until(lambda: served.app.in_flight.in_flight == 0)  # parked: not in flight
        refused = waits("refused")
        # MAX_REQUESTS_IN_FLIGHT=1 still serves a poll; MAX_JOB_WAITERS=1: it does not wait.
        response = await asyncio.wait_for(served.get(other, 5), 10)
        assert (response.status_code, response.json()["status"]) == (200, "queued")
        assert waits("refused") - refused == 1
        run_burst(served.redis)
        assert (await answer).json()["status"] == "finished"
        assert served.app.in_flight.in_flight == 0
    finally:
        await served.http.aclose()
        await served.jobs.aclose()
        await served.jobs.client.aclose()


async def never_gone() -> dict[str, object]:
    """An ASGI receive whose client never leaves."""
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


def never_gone_after_request() -> Callable[[], object]:
    """An ASGI receive: the (empty) request, then a client that never leaves."""
    messages = iter([{"type": "http.request", "body": b"", "more_body": False}])

    async def receive() -> dict[str, object]:
        for message in messages:
            return message
        return await never_gone()

    return receive


def asgi_get(path: str, query: bytes) -> dict[str, object]:
    """The ASGI scope of ``GET path?query``."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"api")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }


def count_reads(served: Served, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the jobs the api reads from Redis from now on."""
    reads: list[str] = []
    fetch = served.jobs.fetch

    async def counted(job_id: str) -> Any:
        reads.append(job_id)
        return await fetch(job_id)

    monkeypatch.setattr(served.jobs, "fetch", counted)
    return reads


async def test_a_job_queued_here_waits_without_a_read_and_is_answered_from_the_announcement(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    await served.subscribe()
    job = await served.jobs.enqueue_call(ADD, args=(2, 3))
    reads = count_reads(served, monkeypatch)
    ended = waits("ended")
    answer = served.get(job, 5)
    await until(lambda: served.jobs.ends.waiting == 1)
    run_burst(served.redis)  # LiveWorker: announces the end with the job resource
    response = await asyncio.wait_for(answer, 2.5)
    assert reads == []  # known not ended: no first read; the announcement was the answer
    assert waits("ended") - ended == 1
    # The very resource a read gives now.
    assert response.json() == job_view_with(*await served.jobs.fetch(job.id))
    assert response.json()["result"] == 5
    assert not served.jobs.ends.not_ended(job.id)  # forgotten once announced


async def test_an_end_heard_before_the_submit_resumes_is_not_missed(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker runs the job and the api hears its end between the submit's EXEC and the
    submit resuming: the job was noted before it was sent, so the poll is not left waiting."""
    await served.subscribe()
    heard = asyncio.Event()
    announced = served.jobs.ends._announced

    def announced_and_tell(data: bytes) -> None:
        announced(data)
        heard.set()

    monkeypatch.setattr(served.jobs.ends, "_announced", announced_and_tell)
    send = served.jobs._send

    async def send_then_end(batch: list) -> None:
        await send(batch)
        run_burst(served.redis)  # the job ends at once
        await asyncio.wait_for(heard.wait(), 5)  # and the api hears of it first

    monkeypatch.setattr(served.jobs, "_send", send_then_end)
    job = await served.jobs.enqueue_call(ADD, args=(4, 5))
    assert not served.jobs.ends.not_ended(job.id)
    timed_out = waits("timed_out")
    response = await asyncio.wait_for(served.get(job, 5), 2.5)  # at once, not at 5 s
    assert (response.json()["status"], response.json()["result"]) == ("finished", 9)
    assert waits("timed_out") - timed_out == 0


async def test_a_failed_submit_leaves_nothing_noted(served: Served) -> None:
    await served.subscribe()
    queued = await served.jobs.enqueue_call(ADD, args=(1, 1))  # Redis's version read
    served.jobs.ends.forget(queued.id)
    up, served.jobs.client = served.jobs.client, aioredis.Redis(port=1, retry=Retry(NoBackoff(), 0))
    try:
        with pytest.raises(redis.ConnectionError):
            await served.jobs.enqueue_call(ADD, args=(1, 1))
    finally:
        await served.jobs.client.aclose()
        served.jobs.client = up
    assert served.jobs.ends._noted == {}


async def test_a_failed_job_is_announced_without_its_resource_and_read(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    await served.subscribe()
    job = await served.jobs.enqueue_call("tests.shared.jobfuncs.explode", args=("no",))
    reads = count_reads(served, monkeypatch)
    answer = served.get(job, 5)
    await until(lambda: served.jobs.ends.waiting == 1)
    run_burst(served.redis)
    response = await asyncio.wait_for(answer, 2.5)
    assert (response.json()["status"], response.json()["error"]["code"]) == ("failed", "job_error")
    assert reads == [job.id]  # after the wake-up only


async def test_only_jobs_queued_here_under_the_current_subscription_skip_the_read(
    served: Served,
) -> None:
    ends = served.jobs.ends
    before = await served.jobs.enqueue_call(ADD, args=(1, 1))  # not subscribed yet
    await served.subscribe()
    assert not ends.not_ended(before.id)
    noted = await served.jobs.enqueue_call(ADD, args=(1, 2))
    assert ends.not_ended(noted.id)
    assert not ends.not_ended(served.enqueue(1, 3).id)  # queued by another process
    served.redis.client_kill_filter(_type="pubsub")  # announcements may be missed meanwhile
    await until(lambda: not ends.subscribed)
    assert not ends.not_ended(noted.id)
    await served.subscribe()
    assert not ends.not_ended(noted.id)  # noted under the dropped subscription: read it


async def test_the_oldest_noted_jobs_are_forgotten_past_the_bound(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("shared.jobs.job_ends.MAX_NOTED_JOBS", 2)
    await served.subscribe()
    jobs = [await served.jobs.enqueue_call(ADD, args=(i, 1)) for i in range(3)]
    assert [served.jobs.ends.not_ended(job.id) for job in jobs] == [False, True, True]


def test_an_announcement_carries_a_small_json_resource_and_nothing_else() -> None:
    view = {"job_id": "j1", "status": "finished", "result": {"p": np.float32(0.5)}}
    assert parse_announcement(announcement("j1", view)) == (
        "j1",
        {"job_id": "j1", "status": "finished", "result": {"p": 0.5}},
    )
    assert parse_announcement(announcement("j1", None)) == ("j1", None)
    assert parse_announcement("j1") == ("j1", None)  # an older worker's, read as text
    assert announcement("j1", {"result": "x" * 10_000}) == b"j1"  # too large: read instead
    assert announcement("j1", {"result": object()}) == b"j1"  # not JSON: read instead


# The worker's side: what it announces, and when.


@pytest.fixture
def carried(redis_url: str) -> Iterator[Callable[[], dict[str, Any]]]:
    """The job ids announced ended on queue ``test`` since the test began, each with the
    resource its announcement carried (or None)."""
    client = redis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    pubsub.subscribe(ended_channel("test"))
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"

    def announced() -> dict[str, Any]:
        views = {}
        while (message := pubsub.get_message(timeout=0.1)) is not None:
            job_id, view = parse_announcement(message["data"])
            views[job_id] = view
        return views

    yield announced
    pubsub.close()
    client.close()


def read_view(client: redis.Redis, job: Job) -> dict[str, Any]:
    """The job resource of ``job`` as the api reads it now."""
    fetched = Job.fetch(job.id, connection=client)
    return job_view_with(fetched, fetched.latest_result())


def test_the_worker_announces_each_end_in_the_transaction_that_records_it(
    redis_url: str, carried: Callable[[], dict[str, Any]]
) -> None:
    client = redis.Redis.from_url(redis_url)
    queue = Queue("test", connection=client)
    finished = queue.enqueue(ADD, 1, 2)
    failed = queue.enqueue("tests.shared.jobfuncs.explode", "no", retry=JobRetry(max=1))
    forgotten = queue.enqueue(ADD, 2, 2, result_ttl=0)  # RQ keeps no result: nothing to carry
    publishes = _calls(client, "publish")
    run_burst(client)
    # The failing job ran twice: the first failure (a retry left) is no end.
    views = carried()
    assert sorted(views) == sorted([finished.id, failed.id, forgotten.id])
    assert _calls(client, "publish") - publishes == 3
    # A finished job's announcement carries the resource a read gives; the others, none.
    assert views[finished.id] == read_view(client, finished)
    assert views[finished.id]["result"] == 3
    assert (views[failed.id], views[forgotten.id]) == (None, None)


def test_a_batch_announces_each_of_its_jobs(
    redis_url: str, carried: Callable[[], dict[str, Any]]
) -> None:
    client = redis.Redis.from_url(redis_url)
    queue = Queue("test", connection=client)
    jobs = [queue.enqueue(ADD, i, 1) for i in range(3)]
    batching_worker(client, batch_size=3).work(burst=True)
    views = carried()
    assert sorted(views) == sorted(job.id for job in jobs)
    assert all(job.get_status() == JobStatus.FINISHED for job in jobs)
    assert [views[job.id] for job in jobs] == [read_view(client, job) for job in jobs]


def test_only_the_ends_count_as_ended(redis_url: str) -> None:
    job = Queue("test", connection=redis.Redis.from_url(redis_url)).enqueue(ADD, 1, 1)
    for status, retries_left, ended in [
        (JobStatus.FINISHED, None, True),
        (JobStatus.FAILED, None, True),
        (JobStatus.FAILED, 1, False),
        (JobStatus.STOPPED, None, True),
        (JobStatus.QUEUED, None, False),
        (JobStatus.STARTED, None, False),
    ]:
        job._status, job.retries_left = status, retries_left
        assert has_ended(job) is ended, (status, retries_left)


def _calls(client: redis.Redis, command: str) -> int:
    return int(client.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))
