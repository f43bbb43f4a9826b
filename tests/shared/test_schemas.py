"""decode_instances turns /predict bodies into arrays, and names the bad field otherwise.

Every test runs twice: with the small-body path (checked in Python) and with
the numpy path of large bodies, which must agree.
"""

import numpy as np
import orjson
import pytest

from shared.kit import schemas
from shared.kit.errors import InvalidInput
from shared.kit.schemas import PredictResponse, decode_instances, decode_rows, prediction_body
from shared.model.metadata import ModelMetadata, TensorSpec

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@pytest.fixture(autouse=True, params=["checked in Python", "checked by numpy"])
def body_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    limit = 10**9 if request.param == "checked in Python" else 0
    monkeypatch.setattr(schemas, "CHECK_IN_PYTHON_UP_TO", limit)


def decode(body: bytes | object, max_instances: int = 10) -> np.ndarray:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return decode_instances(raw, 4, FEATURES, max_instances)


def test_lists_of_numbers_become_float32_rows() -> None:
    rows = decode({"instances": [[5.1, 3.5, 1.4, 0.2], [6, 3, 5, 2]]})
    assert rows.dtype == np.float32
    np.testing.assert_allclose(rows, [[5.1, 3.5, 1.4, 0.2], [6, 3, 5, 2]], rtol=1e-6)


def test_objects_are_taken_in_feature_order() -> None:
    row = dict(zip(reversed(FEATURES), [0.2, 1.4, 3.5, 5.1], strict=True))
    np.testing.assert_allclose(decode({"instances": [row]}), [[5.1, 3.5, 1.4, 0.2]], rtol=1e-6)


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (b"", "body", "empty"),
        (b'{"instances": [[1, 2, 3, NaN]]}', "body", "not valid JSON"),
        (b"[1, 2]", "instances", '"instances" list'),
        ({"rows": [[1, 2, 3, 4]]}, "instances", '"instances" list'),
        ({"instances": "1,2,3,4"}, "instances", "list of rows"),
        ({"instances": []}, "instances", "at least one row"),
        ({"instances": [[1, 2, 3, 4]] * 11}, "instances", "holds 11 rows; at most 10"),
        ({"instances": [[1, 2, 3]]}, "instances[0]", "has 3 values; the model takes 4"),
        ({"instances": [[1, 2, 3, 4], [1, 2, 3, 4, 5]]}, "instances[1]", "has 5 values"),
        ({"instances": [[1, 2, "x", 4]]}, "instances[0][2]", 'got "x"'),
        ({"instances": [[1, 2, None, 4]]}, "instances[0][2]", "got null"),
        ({"instances": [[1, 2, True, 4]]}, "instances[0][2]", "got true"),
        ({"instances": [[1, 2, [3], 4]]}, "instances[0][2]", "got [3]"),
        ({"instances": [[1, 2, 3, 1e300]]}, "instances[0][3]", "float32 range"),
        (b'{"instances": [[1, 2, 3, 1' + b"0" * 40 + b"]]}", "instances[0][3]", "float32 range"),
        ({"instances": [[1, 2, 3, 4], [1, 2, 3, -4e38]]}, "instances[1][3]", "float32 range"),
        ({"instances": [5]}, "instances[0]", "list of 4 numbers"),
        ({"instances": [[1, 2, 3, 4], {"sepal_length": 1}]}, "instances[1]", "mixes lists"),
        ({"instances": [{"sepal_length": 1}]}, "instances[0]", "misses features"),
        (
            {"instances": [dict.fromkeys([*FEATURES, "colour"], 1)]},
            "instances[0]",
            "unknown features ['colour']",
        ),
    ],
)
def test_bad_bodies_name_the_field(body: object, field: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        decode(body)
    assert caught.value.field == field
    assert message in caught.value.message


def iris_metadata() -> ModelMetadata:
    return ModelMetadata(
        name="iris",
        version="1",
        inputs=[TensorSpec(name="input", dtype="float32", shape=[None, 4])],
        outputs=[TensorSpec(name="probabilities", dtype="float32", shape=[None, 3])],
        labels=["setosa", "versicolor", "virginica"],
        feature_names=FEATURES,
        sha256="0" * 64,
    )


def test_prediction_body_follows_the_public_contract() -> None:
    metadata = iris_metadata()
    probabilities = np.array([[0.9, 0.07, 0.03], [0.1, 0.2, 0.7]], dtype=np.float32)
    body = prediction_body(metadata, probabilities)
    parsed = PredictResponse.model_validate(body)
    assert [p.label for p in parsed.predictions] == ["setosa", "virginica"]
    assert parsed.predictions[0].probabilities == {
        "setosa": 0.9,
        "versicolor": 0.07,
        "virginica": 0.03,
    }
    assert (parsed.model_name, parsed.model_version) == ("iris", "1")


def test_decode_rows_takes_width_and_feature_names_from_the_metadata() -> None:
    metadata = iris_metadata()
    row = dict(zip(reversed(FEATURES), [0.2, 1.4, 3.5, 5.1], strict=True))
    body = orjson.dumps({"instances": [row]})
    rows = decode_rows(body, metadata, max_instances=10)
    assert rows.tolist() == decode(body).tolist()
    with pytest.raises(InvalidInput, match="at most 1 per request"):
        decode_rows(orjson.dumps({"instances": [[1, 2, 3, 4]] * 2}), metadata, max_instances=1)
