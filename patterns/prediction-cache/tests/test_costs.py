"""costs.py, the README's measure of an inference against a Redis round trip, runs and answers."""

from pathlib import Path
from types import ModuleType

from conftest import import_file
from shared.cache import CacheSettings

COSTS = Path(__file__).resolve().parents[1] / "costs.py"


def load_costs() -> ModuleType:
    return import_file(COSTS, "prediction_cache_costs")


async def test_costs_measures_an_inference_and_a_redis_get(
    model_repo: Path, redis_url: str
) -> None:
    costs = load_costs()
    assert costs.inference_ms(model_repo, "iris-boosted", rows=3, calls=50) > 0
    assert await costs.redis_get_ms(CacheSettings(redis_url=redis_url), calls=50) > 0
