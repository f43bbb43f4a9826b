"""costs.py, the README's stage-by-stage measure, runs and answers (real PostgreSQL and Redis)."""

import itertools
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import psycopg
import pytest

from conftest import import_file

COSTS = Path(__file__).resolve().parents[1] / "costs.py"


def load_costs() -> ModuleType:
    return import_file(COSTS, "data_cache_costs")


async def test_costs_measures_every_stage(
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
