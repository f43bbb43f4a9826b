r"""What a hit saves, stage by stage, measured where the api runs (medians of many calls).

    ./compose/compose.sh -f patterns/data-cache/compose.yaml \
        exec -T api python - < patterns/data-cache/costs.py

Prints one JSON object, in ms: a PostgreSQL fetch of one item by id (the api's
query, over its kind of connection), a Redis ``GET`` of one cached value (the
api's client and settings), the preprocessing of one stored PNG
(``shared.mechanisms.digit_images``) and one inference of the model on one row (one
onnxruntime thread). One call at a time, so unlike the request stages under
load these are not stretched by other requests sharing the event loop.
"""

import asyncio
import inspect
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shared.mechanisms.digit_images import image_to_digits
from shared.serving.model import OnnxModel
from shared.stores.cache import CacheSettings, connect
from shared.stores.postgres import PostgresSettings, connect_async

FETCH = "SELECT image FROM items WHERE id = %s"


async def median_ms(call: Callable[[int], Any], calls: int) -> float:
    """Median ms of ``call(i)`` for i in 0..calls-1 (awaited when it returns an awaitable)."""
    times = []
    for i in range(calls):
        started = time.perf_counter()
        result = call(i)
        if inspect.isawaitable(result):
            await result
        times.append(time.perf_counter() - started)
    return statistics.median(times[calls // 10 :]) * 1000


async def measure(model_dir: Path, model_name: str, items: int = 200, calls: int = 2000) -> dict:
    """The four figures (ms), over the first ``items`` items."""
    database = await connect_async(PostgresSettings(), "data-cache-costs")
    redis = connect(CacheSettings())
    model = OnnxModel.load(model_dir, model_name, intra_op_threads=1)
    try:
        images = []
        for item_id in range(items):
            cursor = await database.execute(FETCH, (item_id,))
            images.append((await cursor.fetchone())[0])
        rows = [image_to_digits(image) for image in images]
        await redis.set("mlsp:costs:probe", rows[0].tobytes(), px=60_000)

        async def fetch(i: int) -> None:
            await (await database.execute(FETCH, (i % items,))).fetchone()

        figures = {
            "postgres fetch ms": await median_ms(fetch, calls),
            "redis GET ms": await median_ms(lambda _: redis.get("mlsp:costs:probe"), calls),
            "preprocess ms": await median_ms(lambda i: image_to_digits(images[i % items]), calls),
            "inference ms": await median_ms(lambda i: model.predict_proba(rows[i % items]), calls),
        }
        await redis.delete("mlsp:costs:probe")
    finally:
        await redis.aclose()
        await database.close()
    return {name: round(value, 4) for name, value in figures.items()}


def main() -> None:
    """Measure and print the figures as JSON."""
    model_dir = Path(os.environ.get("MODEL_DIR", "/models"))
    print(json.dumps(asyncio.run(measure(model_dir, os.environ.get("MODEL_NAME", "digits")))))


if __name__ == "__main__":
    main()
