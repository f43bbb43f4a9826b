"""The async api never waits on Redis in its event loop: concurrent submits and polls overlap.

Redis is reached through :class:`tests.slow_proxy.SlowProxy`, which holds every
round trip. One request is sent; while its round trip is held, more are sent.
An api that called Redis synchronously would have its loop stuck in the first
round trip, so the others could not start theirs until it ended: never two in
flight at the proxy. One that awaits Redis starts the others' round trips
while the first is held.
"""

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from types import ModuleType

import httpx
import pytest
import redis
from rq import Queue

from tests.slow_proxy import SlowProxy, one_then_more_while_held

GOOD_ROW = [5.1, 3.5, 1.4, 0.2]


@pytest.fixture
def proxy(redis_url: str) -> Iterator[SlowProxy]:
    with SlowProxy(redis_url, delay_s=0.3) as proxy:
        yield proxy


@pytest.fixture
async def http(
    load_service: Callable[..., ModuleType], proxy: SlowProxy
) -> AsyncIterator[httpx.AsyncClient]:
    # No periodic depth read while the test counts round trips.
    api = load_service("async", "api", REDIS_URL=proxy.url, QUEUE_DEPTH_INTERVAL_S="3600")
    transport = httpx.ASGITransport(app=api.app)
    async with (
        api.app.router.lifespan_context(api.app),
        httpx.AsyncClient(transport=transport, base_url="http://api") as client,
    ):
        yield client


async def test_concurrent_submits_overlap_and_queue_real_rq_jobs(
    http: httpx.AsyncClient, proxy: SlowProxy, redis_url: str
) -> None:
    warm_up = await http.post("/predict", json={"instances": [GOOD_ROW]})  # Redis's version read
    answers = await one_then_more_while_held(
        proxy, lambda: http.post("/predict", json={"instances": [GOOD_ROW]})
    )
    assert [a.status_code for a in answers] == [202] * 6
    assert proxy.overlapped_or_shared(len(answers))
    # RQ itself reads what the api wrote: every job queued, with its arguments.
    queue = Queue("predict", connection=redis.Redis.from_url(redis_url))
    submitted = [warm_up, *answers]
    assert sorted(queue.job_ids) == sorted(a.json()["job_id"] for a in submitted)
    for job in queue.jobs:
        assert job.func_name == "tasks.predict"
        assert job.args[0] == [pytest.approx(GOOD_ROW)]


async def test_concurrent_polls_overlap(http: httpx.AsyncClient, proxy: SlowProxy) -> None:
    url = (await http.post("/predict", json={"instances": [GOOD_ROW]})).json()["url"]
    answers = await one_then_more_while_held(proxy, lambda: http.get(url))
    assert {a.json()["status"] for a in answers} == {"queued"}
    assert proxy.max_in_flight >= 2


async def test_readiness_checks_overlap(http: httpx.AsyncClient, proxy: SlowProxy) -> None:
    # Connections made first: a new one's set-up round trips would outlast the check's timeout.
    await asyncio.gather(*(http.get("/health/ready") for _ in range(6)))
    answers = await one_then_more_while_held(proxy, lambda: http.get("/health/ready"))
    assert [a.json() for a in answers] == [{"status": "ready"}] * 6
    assert proxy.max_in_flight >= 2
