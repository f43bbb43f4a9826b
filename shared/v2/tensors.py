"""V2 tensors to numpy and back, for both faces of the protocol.

gRPC carries a tensor's data either as ``raw_input_contents`` (row-major
little-endian bytes: decoded with one ``np.frombuffer``) or in the typed
``contents`` fields (decoded with one ``np.fromiter``); REST carries it as
JSON lists, flat or nested. No per-element Python loop on any numeric path.

Everything a client can get wrong raises :class:`TensorError` with a message
that names the tensor and what is wrong; the servers answer it with
INVALID_ARGUMENT (gRPC) or 400 (REST).
"""

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from shared.v2.proto import inference_pb2 as pb

#: V2 datatype -> numpy dtype (little-endian, as the protocol's raw bytes are).
DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
DATATYPES: dict[str, str] = {dtype.str.lstrip("<|="): name for name, dtype in DTYPES.items()}
#: numpy dtype names used in model metadata -> V2 datatype.
METADATA_DATATYPES: dict[str, str] = {
    "bool": "BOOL",
    "uint8": "UINT8",
    "int32": "INT32",
    "int64": "INT64",
    "float16": "FP16",
    "float32": "FP32",
    "float64": "FP64",
    "string": "BYTES",
}
#: V2 datatype -> the InferTensorContents field that carries it (FP16 only travels raw).
CONTENTS_FIELDS: dict[str, str] = {
    "BOOL": "bool_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
}
#: Refuse larger tensors before allocating anything: a declared shape is cheap to lie about.
MAX_ELEMENTS = 16_000_000


class TensorError(ValueError):
    """A tensor in a request is malformed; the message says which and how."""


#: InferTensorContents field -> the dtype its values arrive in (wider than INT8/16, UINT8/16).
FIELD_DTYPES: dict[str, np.dtype] = {
    "bool_contents": np.dtype("?"),
    "int_contents": np.dtype("<i4"),
    "int64_contents": np.dtype("<i8"),
    "uint_contents": np.dtype("<u4"),
    "uint64_contents": np.dtype("<u8"),
    "fp32_contents": np.dtype("<f4"),
    "fp64_contents": np.dtype("<f8"),
}


def numpy_dtype(datatype: object, name: str) -> np.dtype:
    """The numpy dtype of a V2 datatype, or :class:`TensorError` for one we do not serve."""
    if not isinstance(datatype, str) or datatype not in DTYPES:  # JSON may send a list
        known = ", ".join(DTYPES)
        raise TensorError(f"tensor '{name}': datatype {datatype!r} is not one of {known}")
    return DTYPES[datatype]


def datatype_of(array: np.ndarray) -> str:
    """The V2 datatype of a numpy array."""
    return DATATYPES[array.dtype.str.lstrip("<|=")]


def checked_shape(shape: Sequence[Any], name: str) -> tuple[int, ...]:
    """``shape`` as a tuple of non-negative ints of bounded size, or :class:`TensorError`."""
    if not isinstance(shape, Sequence) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise TensorError(f"tensor '{name}': shape must be a list of non-negative integers")
    dims = tuple(int(d) for d in shape)
    # Each dim on its own too: [0, 2**62] holds no element, but numpy cannot shape it.
    if math.prod(dims) > MAX_ELEMENTS or any(d > MAX_ELEMENTS for d in dims):
        raise TensorError(
            f"tensor '{name}': shape {list(dims)} has more than {MAX_ELEMENTS} elements"
        )
    return dims


def from_grpc(tensor: pb.ModelInferRequest.InferInputTensor, raw: bytes | None) -> np.ndarray:
    """A gRPC input tensor as numpy, from its raw bytes when given, else its typed contents."""
    name = tensor.name
    dtype = numpy_dtype(tensor.datatype, name)
    shape = checked_shape(tensor.shape, name)
    count = math.prod(shape)
    if raw is not None:
        if len(raw) != count * dtype.itemsize:
            raise TensorError(
                f"tensor '{name}': {len(raw)} raw bytes for shape {list(shape)} of "
                f"{tensor.datatype} ({count * dtype.itemsize} expected)"
            )
        return np.frombuffer(raw, dtype=dtype).reshape(shape)
    field = CONTENTS_FIELDS.get(tensor.datatype)
    if field is None:
        raise TensorError(f"tensor '{name}': {tensor.datatype} travels only as raw contents")
    values = getattr(tensor.contents, field)
    if len(values) != count:
        raise TensorError(
            f"tensor '{name}': {len(values)} values in contents.{field} for shape {list(shape)}"
        )
    wide = np.fromiter(values, dtype=FIELD_DTYPES[field], count=count)
    if wide.dtype != dtype and dtype.kind in "iu" and wide.size:
        limits = np.iinfo(dtype)
        if wide.min() < limits.min or wide.max() > limits.max:
            raise TensorError(
                f"tensor '{name}': contents.{field} holds values outside the range of "
                f"{tensor.datatype} [{limits.min}, {limits.max}]"
            )
    return wide.astype(dtype, copy=False).reshape(shape)


def to_grpc(
    name: str, array: np.ndarray, raw: bool
) -> tuple[pb.ModelInferResponse.InferOutputTensor, bytes | None]:
    """An output tensor for a gRPC answer, and its raw bytes when ``raw``."""
    array = np.ascontiguousarray(array)
    datatype = datatype_of(array)
    tensor = pb.ModelInferResponse.InferOutputTensor(
        name=name, datatype=datatype, shape=array.shape
    )
    if raw:
        return tensor, array.astype(DTYPES[datatype], copy=False).tobytes()
    getattr(tensor.contents, CONTENTS_FIELDS[datatype]).extend(array.ravel().tolist())
    return tensor, None


def from_json(tensor: object, index: int) -> tuple[str, np.ndarray]:
    """A REST ``inputs[index]`` object as ``(name, numpy array)``."""
    if not isinstance(tensor, dict):
        raise TensorError(f"inputs[{index}] must be an object with name, shape, datatype, data")
    name = tensor.get("name")
    if not isinstance(name, str) or not name:
        raise TensorError(f"inputs[{index}]: 'name' must be a non-empty string")
    for key in ("shape", "datatype", "data"):
        if key not in tensor:
            raise TensorError(f"tensor '{name}': '{key}' is missing")
    dtype = numpy_dtype(tensor["datatype"], name)
    shape = checked_shape(tensor["shape"], name)
    data = tensor["data"]
    if not isinstance(data, list):
        raise TensorError(f"tensor '{name}': 'data' must be a list")
    try:
        array = np.array(data)
    except ValueError:
        raise TensorError(f"tensor '{name}': 'data' is ragged") from None
    if array.dtype.kind not in "biuf" or (array.dtype.kind == "b") != (dtype.kind == "b"):
        raise TensorError(f"tensor '{name}': 'data' must hold only {tensor['datatype']} values")
    if array.size != math.prod(shape):
        raise TensorError(f"tensor '{name}': {array.size} values in 'data' for shape {list(shape)}")
    with np.errstate(over="ignore", invalid="ignore"):
        return name, array.astype(dtype).reshape(shape)


def to_json(name: str, array: np.ndarray) -> dict[str, Any]:
    """An output tensor for a REST answer (data flattened, row-major)."""
    return {
        "name": name,
        "datatype": datatype_of(array),
        "shape": list(array.shape),
        "data": array.ravel().tolist(),
    }
