"""costs.py, the README's measure of an inference against a Redis round trip: it runs the
model it is named, against real Redis, and cleans up. The figures are the README's to
report, not a test's to bound."""

from pathlib import Path
from types import ModuleType

import pytest
import redis

from conftest import import_file
from shared.model.metadata import ModelError
from shared.stores.cache import CacheSettings

COSTS = Path(__file__).resolve().parents[1] / "costs.py"


def load_costs() -> ModuleType:
    return import_file(COSTS, "prediction_cache_costs")


async def test_costs_times_the_named_model_and_a_redis_get_and_leaves_no_key(
    model_repo: Path, redis_url: str
) -> None:
    costs = load_costs()
    assert costs.inference_ms(model_repo, "iris-boosted", rows=3, calls=50) > 0
    with pytest.raises(ModelError):
        costs.inference_ms(model_repo, "no-such-model", calls=1)
    assert await costs.redis_get_ms(CacheSettings(redis_url=redis_url), calls=50) > 0
    assert redis.Redis.from_url(redis_url).keys("*") == []  # its stored answer is deleted
