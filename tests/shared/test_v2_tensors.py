"""V2 tensors decode to numpy from raw bytes, typed contents and JSON, and bad ones are named."""

import numpy as np
import pytest

from shared.v2 import tensors
from shared.v2.proto import inference_pb2 as pb
from shared.v2.tensors import TensorError

ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)


def grpc_input(datatype: str = "FP32", shape: tuple[int, ...] = (2, 4)) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest()
    request.inputs.add(name="input", datatype=datatype, shape=shape)
    return request.inputs[0]


def test_raw_bytes_decode_without_copying_per_element() -> None:
    raw = ROWS.tobytes()
    array = tensors.from_grpc(grpc_input(), raw)
    np.testing.assert_array_equal(array, ROWS)
    assert array.dtype == np.float32
    assert np.shares_memory(array, np.frombuffer(raw, dtype=np.uint8))  # a view of the bytes


def test_typed_contents_decode() -> None:
    tensor = grpc_input()
    tensor.contents.fp32_contents.extend(ROWS.ravel().tolist())
    np.testing.assert_array_equal(tensors.from_grpc(tensor, None), ROWS)
    ints = grpc_input("INT32", (3,))
    ints.contents.int_contents.extend([1, -2, 3])
    assert tensors.from_grpc(ints, None).tolist() == [1, -2, 3]


@pytest.mark.parametrize(
    ("datatype", "shape", "raw", "message"),
    [
        ("FP32", (2, 4), b"\0" * 31, "31 raw bytes for shape [2, 4] of FP32 (32 expected)"),
        ("FP33", (2, 4), b"\0" * 32, "datatype 'FP33' is not one of"),
        ("FP32", (100_000, 100_000), b"", "more than 16000000 elements"),
        # Found by the fuzz: no element, but numpy cannot make the shape (was INTERNAL).
        ("UINT32", (0, 2**62, 2**40), b"", "more than 16000000 elements"),
        ("FP16", (2,), None, "FP16 travels only as raw contents"),
        ("FP32", (2, 4), None, "0 values in contents.fp32_contents for shape [2, 4]"),
    ],
)
def test_bad_grpc_tensors_are_named(
    datatype: str, shape: tuple[int, ...], raw: bytes | None, message: str
) -> None:
    with pytest.raises(TensorError, match="tensor 'input'") as caught:
        tensors.from_grpc(grpc_input(datatype, shape), raw)
    assert message in str(caught.value)


def test_typed_contents_out_of_range_of_a_narrow_datatype_are_refused() -> None:
    """Found by tests/shared/test_v2_fuzz.py: INT8 contents of 300 was an INTERNAL error."""
    small = grpc_input("INT8", (2,))
    small.contents.int_contents.extend([-128, 127])
    assert tensors.from_grpc(small, None).tolist() == [-128, 127]
    big = grpc_input("INT8", (2,))
    big.contents.int_contents.extend([1, 300])
    with pytest.raises(TensorError, match=r"outside the range of INT8 \[-128, 127\]"):
        tensors.from_grpc(big, None)


def test_outputs_encode_raw_or_typed() -> None:
    tensor, raw = tensors.to_grpc("probabilities", ROWS, raw=True)
    assert (tensor.datatype, list(tensor.shape)) == ("FP32", [2, 4])
    assert raw == ROWS.tobytes()
    typed, none = tensors.to_grpc("label", np.array([0, 2], dtype=np.int64), raw=False)
    assert none is None
    assert list(typed.contents.int64_contents) == [0, 2]


def test_json_tensors_flat_or_nested() -> None:
    for data in (ROWS.ravel().tolist(), ROWS.tolist()):
        name, array = tensors.from_json(
            {"name": "input", "shape": [2, 4], "datatype": "FP32", "data": data}, 0
        )
        assert name == "input"
        np.testing.assert_array_equal(array, ROWS)
    assert tensors.to_json("x", ROWS)["data"] == ROWS.ravel().tolist()


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        ([1, 2], "inputs[0] must be an object"),
        ({"shape": [1], "datatype": "FP32", "data": [1]}, "'name' must be a non-empty string"),
        ({"name": "input", "datatype": "FP32", "data": [1]}, "'shape' is missing"),
        ({"name": "input", "shape": [-1], "datatype": "FP32", "data": [1]}, "non-negative"),
        ({"name": "input", "shape": [3], "datatype": "FP32", "data": [1, 2]}, "2 values"),
        ({"name": "input", "shape": [2], "datatype": "FP32", "data": [1, "a"]}, "only FP32"),
        ({"name": "input", "shape": [2], "datatype": "FP32", "data": [[1], [2, 3]]}, "ragged"),
        ({"name": "input", "shape": [1], "datatype": "FP32", "data": [True]}, "only FP32"),
        ({"name": "input", "shape": [1], "datatype": "FP32", "data": 5}, "must be a list"),
        # Found by tests/shared/test_v2_fuzz.py: a datatype that is not a string was a 500.
        ({"name": "input", "shape": [1], "datatype": ["FP32"], "data": [1]}, "is not one of"),
    ],
)
def test_bad_json_tensors_are_named(tensor: object, message: str) -> None:
    with pytest.raises(TensorError) as caught:
        tensors.from_json(tensor, 0)
    assert message in str(caught.value)
