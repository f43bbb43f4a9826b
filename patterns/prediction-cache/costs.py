r"""What a miss saves, at its core: one inference of the model against one Redis round trip.

Run it where the api runs, so both are measured on the same network and cores::

    ./compose/compose.sh -f patterns/prediction-cache/compose.yaml \
        exec -T api python - < patterns/prediction-cache/costs.py

It prints one JSON object: onnxruntime's time per single-row call of the
pattern's model and of ``iris`` (one thread, as the predictor runs them, on
held-out-like rows), and the time of a Redis ``GET`` of a stored answer with
the api's own client (``redis.asyncio``, the pattern's settings), medians of
many calls.
"""

import asyncio
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

from shared.cache import CacheSettings, connect
from shared.model import OnnxModel

ANSWER = b'{"predictions":[{"label":"setosa","probabilities":{"setosa":1.0}}]}'


def inference_ms_per_row(model_dir: Path, name: str, calls: int = 2000) -> float:
    """Median ms of one single-row ``predict_proba`` of ``name`` (one onnxruntime thread)."""
    model = OnnxModel.load(model_dir, name, intra_op_threads=1)
    low, high = np.array([4.3, 2.0, 1.0, 0.1]), np.array([7.9, 4.4, 6.9, 2.5])
    rows = np.random.default_rng(0).uniform(low, high, (calls, 4)).astype(np.float32)
    times = []
    for row in rows:
        started = time.perf_counter()
        model.predict_proba(row[None])
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
        f"{model} inference ms/row": inference_ms_per_row(model_dir, model),
        "iris inference ms/row": inference_ms_per_row(model_dir, "iris"),
        "redis GET ms": asyncio.run(redis_get_ms(CacheSettings())),
    }
    print(json.dumps({name: round(value, 4) for name, value in figures.items()}))


if __name__ == "__main__":
    main()
