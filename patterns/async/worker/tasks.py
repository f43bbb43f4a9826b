"""The job the async worker runs: predict the rows one request queued.

RQ imports :func:`predict` by its path, ``tasks.predict``, which the api
names when it queues a job. The worker loads the model once at start
(:func:`serve`); every job then runs in the worker process. Jobs already
waiting together run as one onnxruntime call (:func:`predict_batch`, the batch
form the worker is given for ``tasks.predict``), each getting its own answer.
"""

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from shared.kit.metrics import stage
from shared.kit.schemas import prediction_body
from shared.serving.model import OnnxModel

_model: OnnxModel | None = None
_extra_work_s = 0.0


def serve(model: OnnxModel, extra_work_ms: int = 0) -> None:
    """Make ``model`` the one the jobs of this process run (``extra_work_ms`` per job)."""
    global _model, _extra_work_s  # noqa: PLW0603 - the one model this process serves
    _model = model
    _extra_work_s = extra_work_ms / 1000


def model_check() -> str | None:
    """Readiness: the model is loaded and checked."""
    return None if _model is not None else "model not loaded"


def predict(instances: list[list[float]]) -> dict[str, Any]:
    """The ``/predict`` answer for ``instances`` (rows the api has already validated)."""
    return predict_batch([(instances,)])[0]


def predict_batch(calls: Sequence[tuple[list[list[float]]]]) -> list[dict[str, Any]]:
    """The ``/predict`` answers of several jobs' ``(instances,)``, from one model run."""
    if _model is None:
        raise RuntimeError("no model loaded in this worker")
    parts = [np.asarray(instances, dtype=np.float32) for (instances,) in calls]
    with stage("inference"):
        if _extra_work_s:
            time.sleep(_extra_work_s)  # EXTRA_WORK_MS: stands in for a heavier model
        probabilities = _model.predict_proba(np.concatenate(parts) if len(parts) > 1 else parts[0])
    bounds = np.cumsum([len(part) for part in parts])[:-1]
    return [prediction_body(_model.metadata, rows) for rows in np.split(probabilities, bounds)]
