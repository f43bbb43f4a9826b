"""batch's api never waits on PostgreSQL or Redis in its event loop (see tests/slow_proxy.py)."""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import ModuleType

import httpx

from tests.slow_proxy import SlowProxy, one_then_more_while_held

GOOD_ROW = [5.1, 3.5, 1.4, 0.2]


@asynccontextmanager
async def serving(api: ModuleType) -> AsyncIterator[httpx.AsyncClient]:
    """The api's lifespan (its pool open and filled) and a client to it."""
    transport = httpx.ASGITransport(app=api.app)
    async with (
        api.app.router.lifespan_context(api.app),
        httpx.AsyncClient(transport=transport, base_url="http://api") as client,
    ):
        await api.app.state.database.pool.wait()
        yield client


async def test_concurrent_database_requests_overlap(
    job: ModuleType, load_service: Callable[..., ModuleType], batch_env: dict[str, str]
) -> None:
    with SlowProxy(batch_env["DATABASE_URL"], delay_s=0.3) as proxy:
        env = {**batch_env, "DATABASE_URL": proxy.url, "POSTGRES_POOL_SIZE": "4"}
        api = load_service("batch", "api", **env)
        async with serving(api) as client:
            added = await one_then_more_while_held(
                proxy, lambda: client.post("/rows", json={"instances": [GOOD_ROW]})
            )
            assert proxy.max_in_flight >= 2
            row_ids = [answer.json()["ids"][0] for answer in added]
            assert len(set(row_ids)) == 6
            read = await one_then_more_while_held(proxy, lambda: client.get(f"/rows/{row_ids[0]}"))
            assert {answer.json()["status"] for answer in read} == {"pending"}
            assert proxy.max_in_flight >= 2


async def test_concurrent_runs_and_polls_overlap(
    job: ModuleType, load_service: Callable[..., ModuleType], batch_env: dict[str, str]
) -> None:
    with SlowProxy(batch_env["REDIS_URL"], delay_s=0.3) as proxy:
        api = load_service("batch", "api", **{**batch_env, "REDIS_URL": proxy.url})
        async with serving(api) as client:
            await client.post("/runs")  # a connection made, Redis's version read
            started = await one_then_more_while_held(proxy, lambda: client.post("/runs"))
            assert {answer.status_code for answer in started} == {202}
            assert proxy.overlapped_or_shared(len(started))
            url = started[0].json()["url"]
            polled = await one_then_more_while_held(proxy, lambda: client.get(url))
            assert {answer.json()["status"] for answer in polled} == {"queued"}
            assert proxy.max_in_flight >= 2
