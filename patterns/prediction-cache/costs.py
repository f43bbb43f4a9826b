r"""What a miss saves, at its core: one inference of the model against one Redis round trip.

Run it where the api runs, so both are measured on the same network and cores::

    ./compose/compose.sh -f patterns/prediction-cache/compose.yaml \
        exec -T api python - < patterns/prediction-cache/costs.py

It prints one JSON object: onnxruntime's time for one call of the pattern's
model on 1 and on 10 rows and of ``iris`` on 1 row (one thread, as the
predictor runs them), and the time of a Redis ``GET`` of a stored answer with
the api's own client (``redis.asyncio``, the pattern's settings): medians of
many calls.
"""

import asyncio
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

from shared.serving.model import OnnxModel
from shared.stores.cache import CacheSettings, connect

ANSWER = b'{"predictions":[{"label":"setosa","probabilities":{"setosa":1.0}}]}'


def inference_ms(model_dir: Path, name: str, rows: int = 1, calls: int = 2000) -> float:
    """Median ms of one ``predict_proba`` of ``name`` on ``rows`` rows (one onnxruntime thread).

    The rows are drawn uniformly over the iris measurements' ranges, a fresh set each call.
    """
    model = OnnxModel.load(model_dir, name, intra_op_threads=1)
    low, high = np.array([4.3, 2.0, 1.0, 0.1]), np.array([7.9, 4.4, 6.9, 2.5])
    batches = np.random.default_rng(0).uniform(low, high, (calls, rows, 4)).astype(np.float32)
    times = []
    for batch in batches:
        started = time.perf_counter()
        model.predict_proba(batch)
        times.append(time.perf_counter() - started)
    return statistics.median(times[calls // 10 :]) * 1000


async def redis_get_ms(settings: CacheSettings, calls: int = 2000) -> float:
    """Median ms of one ``GET`` of a stored answer with the api's client."""
    client = connect(settings)
    key = "mlsp:costs:probe"
    try:
        await client.set(key, ANSWER, px=60_000)
        times = []
        for _ in range(calls):
            started = time.perf_counter()
            await client.get(key)
            times.append(time.perf_counter() - started)
        await client.delete(key)
    finally:
        await client.aclose()
    return statistics.median(times[calls // 10 :]) * 1000


def main() -> None:
    """Measure and print the figures as JSON."""
    model_dir = Path(os.environ.get("MODEL_DIR", "/models"))
    model = os.environ.get("MODEL_NAME", "iris-boosted")
    figures = {
        f"{model} inference ms, 1 row": inference_ms(model_dir, model),
        f"{model} inference ms, 10 rows": inference_ms(model_dir, model, rows=10, calls=500),
        "iris inference ms, 1 row": inference_ms(model_dir, "iris"),
        "redis GET ms": asyncio.run(redis_get_ms(CacheSettings())),
    }
    print(json.dumps({name: round(value, 4) for name, value in figures.items()}))


if __name__ == "__main__":
    main()
