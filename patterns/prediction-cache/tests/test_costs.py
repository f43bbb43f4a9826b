"""costs.py, the README's measure of an inference against a Redis round trip, runs and answers."""

import importlib.util
from pathlib import Path
from types import ModuleType

from shared.cache import CacheSettings

COSTS = Path(__file__).resolve().parents[1] / "costs.py"


def load_costs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("prediction_cache_costs", COSTS)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_costs_measures_an_inference_and_a_redis_get(
    model_repo: Path, redis_url: str
) -> None:
    costs = load_costs()
    assert costs.inference_ms(model_repo, "iris-boosted", rows=3, calls=50) > 0
    assert await costs.redis_get_ms(CacheSettings(redis_url=redis_url), calls=50) > 0
