"""costs.py, the README's stage-by-stage measure: it runs every stage against real PostgreSQL
and Redis, times each call it is given and cleans up. The figures themselves are the
README's to report, not a test's to bound."""

import itertools
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import psycopg
import pytest
import redis

from conftest import import_file

COSTS = Path(__file__).resolve().parents[1] / "costs.py"


def load_costs() -> ModuleType:
    return import_file(COSTS, "data_cache_costs")


async def test_median_ms_times_one_call_per_index_and_awaits_the_awaitable_ones() -> None:
    called: list[int] = []

    async def call(index: int) -> None:
        called.append(index)

    assert await load_costs().median_ms(call, 20) >= 0
    assert called == list(range(20))


async def test_costs_runs_every_stage_on_the_real_stores_and_leaves_no_key(
    load_service: Callable[..., ModuleType],
    model_repo: Path,
    postgres_url: str,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed = load_service("data-cache", "seed")
    with psycopg.connect(postgres_url) as connection:
        seed.seed(connection, itertools.islice(seed.digit_items(), 20))
    monkeypatch.setenv("DATABASE_URL", postgres_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    figures = await load_costs().measure(model_repo, "digits", items=20, calls=50)
    assert set(figures) == {"postgres fetch ms", "redis GET ms", "preprocess ms", "inference ms"}
    assert all(value > 0 for value in figures.values())
    assert redis.Redis.from_url(redis_url).keys("*") == []  # its probe value is deleted
