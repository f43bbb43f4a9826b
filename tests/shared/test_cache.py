"""The read-through cache against a real redis-server: keys, TTL, single flight, bypass."""

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import redis
from prometheus_client import REGISTRY

from shared.kit.errors import DependencyUnavailable
from shared.model.metadata import ModelMetadata, TensorSpec
from shared.stores.cache import CacheSettings, ReadThroughCache, prediction_key, rows_digest
from tests.compose_stack import free_port
from tests.local_servers import RedisServer

KEY = "mlsp:test:key"


class Computation:
    """A stand-in for a costly computation that counts its calls."""

    def __init__(
        self, value: bytes = b"answer", delay_s: float = 0.0, error: Exception | None = None
    ) -> None:
        self.value = value
        self.delay_s = delay_s
        self.error = error
        self.calls = 0

    async def __call__(self) -> bytes:
        self.calls += 1
        await asyncio.sleep(self.delay_s)
        if self.error is not None:
            raise self.error
        return self.value


def make_cache(url: str, name: str, **settings: float) -> ReadThroughCache:
    defaults = {"cache_timeout_s": 0.2, "cache_retry_s": 0.3, "cache_lock_ttl_s": 2.0}
    return ReadThroughCache.from_settings(
        CacheSettings(redis_url=url, **{**defaults, **settings}), name=name
    )


def sample(metric: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(metric, labels) or 0.0


@pytest.fixture
async def cache(redis_url: str, request: pytest.FixtureRequest) -> AsyncIterator[ReadThroughCache]:
    cache = make_cache(redis_url, name=request.node.name)
    yield cache
    await cache.close()


def metadata(version: str = "1", sha256: str = "a" * 64) -> ModelMetadata:
    return ModelMetadata(
        name="iris-boosted",
        version=version,
        inputs=[TensorSpec(name="input", dtype="float32", shape=[None, 4])],
        outputs=[TensorSpec(name="probabilities", dtype="float32", shape=[None, 3])],
        sha256=sha256,
    )


def test_equal_inputs_written_differently_share_a_digest() -> None:
    as_ints = np.array([[5, 3, 1, 0]], dtype=np.int64)
    as_floats = np.array([[5.0, 3.0, 1.0, 0.0]], dtype=np.float64)
    negative_zero = np.array([[5.0, 3.0, 1.0, -0.0]], dtype=np.float32)
    assert rows_digest(as_ints) == rows_digest(as_floats) == rows_digest(negative_zero)
    # Values that round to the same float32 are the same input to the model.
    assert rows_digest(np.array([[5.1, 3.5, 1.4, 0.2]])) == rows_digest(
        np.array([[5.1000000001, 3.5, 1.4, 0.2]])
    )
    assert rows_digest(as_floats) != rows_digest(np.array([[5.0, 3.0, 1.0, 0.1]]))


def test_the_shape_is_part_of_the_digest() -> None:
    rows = np.arange(8, dtype=np.float32)
    assert rows_digest(rows.reshape(2, 4)) != rows_digest(rows.reshape(1, 8))


def test_a_new_model_version_or_file_never_shares_keys() -> None:
    rows = np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)
    key = prediction_key(metadata(), rows)
    assert key.startswith("mlsp:prediction:iris-boosted:1:aaaaaaaaaaaa:")
    assert key.endswith(rows_digest(rows))
    assert prediction_key(metadata(version="2"), rows) != key
    assert prediction_key(metadata(sha256="b" * 64), rows) != key


async def test_a_miss_is_computed_and_stored_with_the_ttl_then_hits(redis_url: str) -> None:
    cache = make_cache(redis_url, "ttl", cache_ttl_s=60)
    compute = Computation()
    try:
        first = await cache.get_or_compute(KEY, compute)
        second = await cache.get_or_compute(KEY, compute)
    finally:
        await cache.close()
    assert (first.result, second.result) == ("miss", "hit")
    assert first.value == second.value == b"answer"
    assert compute.calls == 1
    client = redis.Redis.from_url(redis_url)
    assert 59_000 < client.pttl(KEY) <= 60_000
    assert not client.exists(f"{KEY}:lock")
    client.close()
    assert cache.hit_ratio() == 0.5
    assert sample("mlsp_cache_hit_ratio", cache="ttl") == 0.5
    assert sample("mlsp_cache_requests_total", cache="ttl", result="miss") == 1


async def test_a_stampede_of_misses_computes_once(cache: ReadThroughCache) -> None:
    compute = Computation(delay_s=0.05)
    answers = await asyncio.gather(*(cache.get_or_compute(KEY, compute) for _ in range(50)))
    assert compute.calls == 1
    assert [a.result for a in answers].count("miss") == 1
    assert {a.result for a in answers} == {"miss", "coalesced"}
    assert {a.value for a in answers} == {b"answer"}


async def test_requests_joining_a_lookup_that_hits_are_hits(cache: ReadThroughCache) -> None:
    await cache.get_or_compute(KEY, Computation())
    compute = Computation()
    answers = await asyncio.gather(*(cache.get_or_compute(KEY, compute) for _ in range(10)))
    assert compute.calls == 0
    assert {a.result for a in answers} == {"hit"}


async def test_a_stampede_across_replicas_computes_once(redis_url: str) -> None:
    replicas = [make_cache(redis_url, f"replica-{i}") for i in range(3)]
    compute = Computation(delay_s=0.1)
    try:
        answers = await asyncio.gather(
            *(replica.get_or_compute(KEY, compute) for replica in replicas for _ in range(10))
        )
    finally:
        for replica in replicas:
            await replica.close()
    assert compute.calls == 1
    assert [a.result for a in answers].count("miss") == 1
    assert {a.result for a in answers} == {"miss", "coalesced"}


async def test_a_failed_computation_reaches_every_waiter_and_stores_nothing(
    cache: ReadThroughCache, redis_url: str
) -> None:
    failing = Computation(delay_s=0.05, error=DependencyUnavailable("predictor is down"))
    answers = await asyncio.gather(
        *(cache.get_or_compute(KEY, failing) for _ in range(5)), return_exceptions=True
    )
    assert failing.calls == 1
    assert all(isinstance(a, DependencyUnavailable) for a in answers)
    client = redis.Redis.from_url(redis_url)
    assert not client.exists(KEY)
    assert not client.exists(f"{KEY}:lock")  # released: the next request computes at once
    client.close()
    assert (await cache.get_or_compute(KEY, Computation())).result == "miss"


async def test_a_lock_left_by_a_dead_replica_is_waited_out_once(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.set(f"{KEY}:lock", "someone-else", px=300)
    client.close()
    cache = make_cache(redis_url, "dead-lock", cache_lock_ttl_s=0.3)
    compute = Computation()
    try:
        answer = await cache.get_or_compute(KEY, compute)
    finally:
        await cache.close()
    assert (answer.result, compute.calls) == ("miss", 1)


async def test_redis_down_is_bypassed_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    cache = make_cache(f"redis://127.0.0.1:{free_port()}/0", "down", cache_retry_s=60)
    compute = Computation()
    try:
        with caplog.at_level(logging.WARNING, logger="shared.stores.cache"):
            answers = [await cache.get_or_compute(KEY, compute) for _ in range(3)]
    finally:
        await cache.close()
    assert [a.result for a in answers] == ["bypass"] * 3
    assert compute.calls == 3
    warnings = [r.getMessage() for r in caplog.records if r.name == "shared.stores.cache"]
    assert len(warnings) == 1
    assert "cache down: Redis lookup failed (ConnectionError" in warnings[0]
    assert "bypassing Redis for 60 s" in warnings[0]
    assert sample("mlsp_cache_errors_total", cache="down", operation="lookup") == 1
    assert sample("mlsp_cache_available", cache="down") == 0


async def test_a_hung_redis_is_bypassed_within_the_timeout_and_used_again_after(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with RedisServer(tmp_path) as server:
        client = server.client()
        client.set("other", b"stored before the hang")
        client.close()
        # The retry period is 10x the timeout: the second call surely falls inside it.
        cache = make_cache(server.url, "hung", cache_timeout_s=0.1, cache_retry_s=1.0)
        compute = Computation()
        try:
            assert (await cache.get_or_compute(KEY, compute)).result == "miss"
            server.pause()
            started = time.perf_counter()
            hung = await cache.get_or_compute("fresh", compute)
            hung_s = time.perf_counter() - started
            skipped = await cache.get_or_compute("fresh", compute)  # no Redis call at all
            assert sample("mlsp_cache_errors_total", cache="hung", operation="lookup") == 1
            server.resume()
            await asyncio.sleep(1.05)
            with caplog.at_level(logging.INFO, logger="shared.stores.cache"):
                back = await cache.get_or_compute("other", compute)
        finally:
            await cache.close()
    assert (hung.result, skipped.result) == ("bypass", "bypass")
    assert hung_s < 5 * 0.1  # its timeout, with a 5x margin for a loaded machine
    # The connection that timed out was dropped: no late answer is read as this one's.
    assert (back.result, back.value) == ("hit", b"stored before the hang")
    assert any("Redis answers again" in r.getMessage() for r in caplog.records)
    assert sample("mlsp_cache_available", cache="hung") == 1


async def test_a_full_redis_evicts_old_entries_and_keeps_caching(tmp_path: Path) -> None:
    with RedisServer(tmp_path, "--maxmemory", "4mb", "--maxmemory-policy", "allkeys-lru") as server:
        cache = make_cache(server.url, "lru")
        try:
            for i in range(400):
                answer = await cache.get_or_compute(f"mlsp:test:{i}", Computation(b"x" * 20_000))
                assert answer.result == "miss"
            last = await cache.get_or_compute("mlsp:test:399", Computation())
        finally:
            await cache.close()
        client = server.client()
        evicted = client.info("stats")["evicted_keys"]
        client.close()
    assert evicted > 0
    assert last.result == "hit"


async def test_warm_up_loads_the_scripts_and_tolerates_redis_down(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    cache = make_cache(redis_url, name="warm-up")
    await cache.warm_up()
    client = redis.Redis.from_url(redis_url)
    assert client.script_exists(cache._lookup.sha, cache._store.sha, cache._unlock.sha) == [
        True,
        True,
        True,
    ]
    await cache.close()
    down = make_cache(f"redis://127.0.0.1:{free_port()}/0", name="warm-up-down")
    with caplog.at_level(logging.WARNING, logger="shared.stores.cache"):
        await down.warm_up(timeout_s=1.0)
    assert "not reachable at start" in caplog.text
    assert (await down.get_or_compute(KEY, Computation())).result == "bypass"
    await down.close()
