"""The public JSON contract of every pattern's ``api``, and its fast decoder.

``POST /predict`` takes ``{"instances": [...]}``, each instance a list of
feature values in the model's order or an object keyed by feature name, and
answers ``{"predictions": [...], "model_name": ..., "model_version": ...}``.

The pydantic models here document the contract (OpenAPI) and type the tests;
requests are decoded by :func:`decode_instances`. A small body (a few rows) is
checked value by value in Python and becomes a float32 array in one numpy
call; a large one is turned into an array by numpy first, and its rows are only
walked to name the bad field when that fails. Answers are built the same way:
in Python when small, with numpy when large.
"""

from typing import Any

import numpy as np
import orjson
from pydantic import BaseModel, Field

from shared.kit.errors import InvalidInput
from shared.model.metadata import ModelMetadata

Instance = list[float] | dict[str, float]

# Up to this many values a body is checked value by value in Python and turned
# into an array in one call, and an answer is rounded in Python: cheaper than
# numpy's several calls (each a few µs) for the one-row requests of an online
# api. Larger bodies and answers go through numpy.
CHECK_IN_PYTHON_UP_TO = 128
_JSON_NUMBERS = (int, float)
_FLOAT32_MAX = float(np.finfo(np.float32).max)


class PredictRequest(BaseModel):
    """Rows to predict: lists in the model's feature order, or objects by feature name."""

    # Two examples, one per form: one body may not mix them (the first was a 422 in /docs).
    instances: list[Instance] = Field(
        min_length=1,
        examples=[
            [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]],
            [{"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.2, "petal_width": 2.3}],
        ],
    )


class Prediction(BaseModel):
    """One row's answer: the most likely class and every class's probability."""

    label: str
    probabilities: dict[str, float]


class PredictResponse(BaseModel):
    """The answers, in the order of the instances, and the model that gave them."""

    predictions: list[Prediction]
    model_name: str
    model_version: str


class ErrorDetail(BaseModel):
    """What went wrong, which field, and the request id to find it in the logs."""

    code: str
    message: str
    field: str | None = None
    request_id: str | None = None


class ErrorResponse(BaseModel):
    """The body of every 4xx/5xx answer."""

    error: ErrorDetail


def decode_json(body: bytes) -> Any:
    """Parse a request body, or raise :class:`InvalidInput` naming the problem."""
    if not body:
        raise InvalidInput('the body is empty; send JSON like {"instances": [[...]]}', field="body")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}", field="body") from exc


def decode_instances(
    body: bytes, n_features: int, feature_names: list[str], max_instances: int
) -> np.ndarray:
    """The ``instances`` of a ``/predict`` body as a (rows, n_features) float32 array."""
    payload = decode_json(body)
    if not isinstance(payload, dict) or "instances" not in payload:
        raise InvalidInput('the body must be an object with an "instances" list', field="instances")
    instances = payload["instances"]
    if not isinstance(instances, list):
        raise InvalidInput("must be a list of rows", field="instances")
    if not instances:
        raise InvalidInput("must hold at least one row", field="instances")
    if len(instances) > max_instances:
        raise InvalidInput(
            f"holds {len(instances)} rows; at most {max_instances} per request", field="instances"
        )
    if isinstance(instances[0], dict):
        instances = [_row_from_object(row, i, feature_names) for i, row in enumerate(instances)]
    if len(instances) * n_features <= CHECK_IN_PYTHON_UP_TO:
        _raise_for_first_bad_value(instances, n_features)
        return np.array(instances, dtype=np.float32)
    return _rows_checked_by_numpy(body, instances, n_features)


def _rows_checked_by_numpy(body: bytes, instances: list[Any], n_features: int) -> np.ndarray:
    try:
        array = np.array(instances)
    except ValueError:  # ragged rows
        array = None
    # numpy reads JSON true/false as 1/0: look for them only when the body has any.
    has_bool = b"true" in body or b"false" in body
    if (
        array is None
        or has_bool
        or array.dtype.kind not in "fiu"
        or array.ndim != 2
        or array.shape[1] != n_features
    ):
        _raise_for_first_bad_value(instances, n_features)
        if not has_bool:
            raise InvalidInput(f"must be rows of {n_features} numbers", field="instances")
    with np.errstate(over="ignore"):  # overflow is reported below, per field
        rows = array.astype(np.float32)
    if not np.isfinite(rows).all():
        i, j = (int(k) for k in np.argwhere(~np.isfinite(rows))[0])
        raise InvalidInput(
            f"{instances[i][j]!r} is out of the float32 range", field=f"instances[{i}][{j}]"
        )
    return rows


def decode_rows(body: bytes, metadata: ModelMetadata, max_instances: int) -> np.ndarray:
    """:func:`decode_instances` for the model ``metadata`` describes (its width, feature names)."""
    return decode_instances(body, metadata.input.shape[-1], metadata.feature_names, max_instances)


def _row_from_object(row: object, i: int, feature_names: list[str]) -> list[Any]:
    if not isinstance(row, dict):
        raise InvalidInput("mixes objects and lists; use one form", field=f"instances[{i}]")
    missing = [name for name in feature_names if name not in row]
    if missing:
        raise InvalidInput(f"misses features {missing}", field=f"instances[{i}]")
    unknown = sorted(set(row) - set(feature_names))
    if unknown:
        raise InvalidInput(
            f"has unknown features {unknown}; the model takes {feature_names}",
            field=f"instances[{i}]",
        )
    return [row[name] for name in feature_names]


def _raise_for_first_bad_value(instances: list[Any], n_features: int) -> None:
    for i, row in enumerate(instances):
        if isinstance(row, dict):
            raise InvalidInput("mixes lists and objects; use one form", field=f"instances[{i}]")
        if type(row) is not list:
            raise InvalidInput(f"must be a list of {n_features} numbers", field=f"instances[{i}]")
        if len(row) != n_features:
            raise InvalidInput(
                f"has {len(row)} values; the model takes {n_features}", field=f"instances[{i}]"
            )
        for j, value in enumerate(row):
            # JSON numbers parse to exactly int or float (true is a bool, not an int here).
            if type(value) not in _JSON_NUMBERS:
                raise InvalidInput(
                    f"expected a number, got {orjson.dumps(value).decode()}",
                    field=f"instances[{i}][{j}]",
                )
            if not -_FLOAT32_MAX <= value <= _FLOAT32_MAX:  # JSON has no NaN or infinity
                raise InvalidInput(
                    f"{value!r} is out of the float32 range", field=f"instances[{i}][{j}]"
                )


def prediction_body(
    metadata: ModelMetadata, probabilities: np.ndarray, version: str | None = None
) -> dict[str, Any]:
    """The ``/predict`` answer for a (rows, classes) probability array; ``version``: the
    model version that answered, when it may not be the metadata's."""
    labels = metadata.labels
    best, rounded = _best_and_rounded(probabilities)
    return {
        "predictions": [
            {"label": labels[k], "probabilities": dict(zip(labels, row, strict=True))}
            for k, row in zip(best, rounded, strict=True)
        ],
        "model_name": metadata.name,
        "model_version": version or metadata.version,
    }


def _best_and_rounded(probabilities: np.ndarray) -> tuple[list[int], list[list[float]]]:
    """Each row's best class, and its probabilities to 6 decimals (float32's ~7
    significant digits, without the noise)."""
    if probabilities.size <= CHECK_IN_PYTHON_UP_TO:
        rows = probabilities.tolist()
        return [row.index(max(row)) for row in rows], [[round(p, 6) for p in row] for row in rows]
    return (
        probabilities.argmax(axis=1).tolist(),
        np.round(probabilities.astype(np.float64), 6).tolist(),
    )
