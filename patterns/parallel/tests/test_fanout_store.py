"""FanOutStore against a real redis-server: jobs, results as they arrive, expiry, Redis down."""

import asyncio
import time
from collections.abc import AsyncIterator

import numpy as np
import pytest

from conftest import _free_port, service_module
from shared.kit.errors import DependencyTimeout, DependencyUnavailable
from shared.stores.redis_client import RedisSettings, connect_async

fanout = service_module("parallel", "api", "fanout")
fanout_store = service_module("parallel", "api", "fanout_store")
MemberResult, fan_out = fanout.MemberResult, fanout.fan_out
GRACE_S, FanOutStore = fanout_store.GRACE_S, fanout_store.FanOutStore


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[FanOutStore]:
    client = connect_async(RedisSettings(redis_url=redis_url))
    yield FanOutStore(client, prefix="test", ttl_s=60)
    await client.aclose()


async def test_results_arrive_one_by_one_and_the_job_finishes(store: FanOutStore) -> None:
    job_id = await store.create(["a", "b"], deadline_s=5, context={"rows": 2})
    job = await store.read(job_id)
    assert job is not None
    assert (job.members, job.pending, job.context) == (["a", "b"], ["a", "b"], {"rows": 2})
    assert not job.final()
    assert job.results_now() == []

    await store.record(job_id, MemberResult("b", 1.5, value=np.array([[0.25, 0.75]], np.float32)))
    job = await store.read(job_id)
    assert job is not None
    assert job.pending == ["a"]
    (b,) = job.results_now()
    assert (b.member, b.ms, b.value, b.ok) == ("b", 1.5, [[0.25, 0.75]], True)

    await store.record(job_id, MemberResult("a", 9.0, error=DependencyTimeout("a was slow")))
    await store.finish(job_id)
    job = await store.read(job_id)
    assert job is not None
    assert job.final()
    assert job.finished
    a, b = job.results_now()
    assert isinstance(a.error, DependencyTimeout)
    assert a.left_out_body() == {
        "member": "a",
        "code": "dependency_timeout",
        "message": "a was slow",
    }


async def test_members_missing_after_the_deadline_count_as_timed_out(store: FanOutStore) -> None:
    job_id = await store.create(["a", "b"], deadline_s=0.1)
    await store.record(job_id, MemberResult("a", 1.0, value=[1]))
    job = await store.read(job_id)
    assert job is not None
    later = job.created_at + 0.1 + GRACE_S + 0.01
    assert not job.final(job.created_at)
    assert job.final(later)
    a, b = job.results_now(later)
    assert a.ok
    assert b.error is not None
    assert b.error.code == "dependency_timeout"
    assert "by the job's deadline of 0.1 s" in b.error.message


async def test_jobs_expire_and_unknown_ids_are_none(store: FanOutStore, redis_url: str) -> None:
    job_id = await store.create(["a"], deadline_s=1)
    assert 0 < await store.redis.ttl(f"test:job:{job_id}") <= 60
    assert await store.read("0" * 32) is None
    assert await store.read("../etc") is None


async def test_fan_out_stores_as_it_goes(store: FanOutStore) -> None:
    job_id = await store.create(["a", "b"], deadline_s=1)

    async def answer(_: float) -> list[float]:
        return [0.5]

    async def late(_: float) -> list[float]:
        await asyncio.sleep(5)
        return [0.0]

    started = time.perf_counter()
    await fan_out({"a": answer, "b": late}, 0.2, on_result=lambda r: store.record(job_id, r))
    assert time.perf_counter() - started < 1
    job = await store.read(job_id)
    assert job is not None
    assert [r.ok for r in job.results_now()] == [True, False]


async def test_redis_down_is_a_503() -> None:
    client = connect_async(
        RedisSettings(redis_url=f"redis://127.0.0.1:{_free_port()}/0", redis_connect_timeout_s=0.5)
    )
    store = FanOutStore(client, prefix="test")
    try:
        with pytest.raises(DependencyUnavailable, match=r"^storing the job: Redis is unavailable"):
            await store.create(["a"], 1)
        with pytest.raises(DependencyUnavailable, match=r"^reading the job: Redis is unavailable"):
            await store.read("0" * 32)
        assert (await store.ping() or "").startswith("Redis: ConnectionError")
    finally:
        await client.aclose()
