"""Raw onnxruntime rows/s in-process: the physical limit under any serving pattern.

Run inside a container that has the model repository at /models, e.g.
``docker compose exec -T api python - < loadtests/bench/inference.py``.
Prints one JSON object: rows/s for single-row calls and for 256-row batches.
"""

import json
import os
import time

import numpy as np

from shared.serving.model import OnnxModel

MODEL_DIR = os.environ.get("MODEL_DIR", "/models")


def rows_per_second(model: OnnxModel, batch: int, seconds: float = 3.0) -> float:
    """Rows/s of ``model.predict_proba`` on ``batch``-row inputs."""
    rows = np.random.default_rng(0).uniform(0, 7, (batch, model.n_features)).astype(np.float32)
    for _ in range(100):
        model.predict_proba(rows)
    calls, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(100):
            model.predict_proba(rows)
        calls += 100
    return calls * batch / elapsed


model = OnnxModel.load(MODEL_DIR, "iris")
print(
    json.dumps(
        {
            "name": "onnxruntime in-process",
            "rows_per_s_single": rows_per_second(model, 1),
            "rows_per_s_batch256": rows_per_second(model, 256),
        }
    )
)
