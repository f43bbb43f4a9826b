"""Stock tritonclient clients against our predictor (run by test_v2_predictor.py).

Not collected on its own: test_v2_predictor.py runs this file in a pytest of
its own, with the Python of .venv-interop (compose/requirements/interop.lock) and
the predictor's addresses in PREDICTOR_GRPC and PREDICTOR_REST. tritonclient
needs protobuf < 7, which the images have outgrown (see interop.in), and it
registers the protocol's protobuf messages under the same names as our stubs.
"""

import os

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)


@pytest.fixture(scope="module")
def grpc_client() -> triton_grpc.InferenceServerClient:
    return triton_grpc.InferenceServerClient(os.environ["PREDICTOR_GRPC"])


@pytest.fixture(scope="module")
def http_client() -> triton_http.InferenceServerClient:
    return triton_http.InferenceServerClient(os.environ["PREDICTOR_REST"])


def grpc_input(rows: np.ndarray, datatype: str = "FP32", name: str = "input"):
    tensor = triton_grpc.InferInput(name, list(rows.shape), datatype)
    tensor.set_data_from_numpy(rows)
    return tensor


def test_tritonclient_grpc_health_and_metadata(grpc_client) -> None:
    assert grpc_client.is_server_live()
    assert grpc_client.is_server_ready()
    assert grpc_client.is_model_ready("iris")
    assert grpc_client.is_model_ready("iris", "1")
    metadata = grpc_client.get_model_metadata("iris", as_json=True)
    assert metadata["platform"] == "onnx_onnxv1"
    assert metadata["inputs"] == [{"name": "input", "datatype": "FP32", "shape": ["-1", "4"]}]
    assert grpc_client.get_server_metadata(as_json=True)["name"] == "mlsp-predictor"


def test_tritonclient_grpc_inference(grpc_client) -> None:
    result = grpc_client.infer("iris", [grpc_input(ROWS)])
    assert result.as_numpy("label").tolist() == [0, 2]
    probabilities = result.as_numpy("probabilities")
    assert probabilities.shape == (2, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
    only = grpc_client.infer(
        "iris", [grpc_input(ROWS)], outputs=[triton_grpc.InferRequestedOutput("label")]
    )
    assert only.as_numpy("probabilities") is None


@pytest.mark.parametrize(
    ("model", "inputs", "status", "message"),
    [
        ("tulip", lambda: [grpc_input(ROWS)], "StatusCode.NOT_FOUND", "unknown model 'tulip'"),
        (
            "iris",
            lambda: [grpc_input(ROWS.astype(np.float64), "FP64")],
            "StatusCode.INVALID_ARGUMENT",
            "datatype FP64; the model takes FP32",
        ),
        (
            "iris",
            lambda: [grpc_input(ROWS[:, :3].copy())],
            "StatusCode.INVALID_ARGUMENT",
            "shape [2, 3]; the model takes [-1, 4]",
        ),
        (
            "iris",
            lambda: [grpc_input(ROWS, name="features")],
            "StatusCode.INVALID_ARGUMENT",
            "takes inputs ['input'], got ['features']",
        ),
    ],
)
def test_tritonclient_grpc_errors(grpc_client, model, inputs, status, message) -> None:
    with pytest.raises(InferenceServerException) as caught:
        grpc_client.infer(model, inputs())
    assert caught.value.status() == status
    assert message in caught.value.message()
    assert grpc_client.is_server_live()


def test_unknown_version_is_not_found(grpc_client) -> None:
    with pytest.raises(InferenceServerException) as caught:
        grpc_client.get_model_metadata("iris", "7")
    assert caught.value.status() == "StatusCode.NOT_FOUND"


def test_tritonclient_http(http_client) -> None:
    assert http_client.is_server_live()
    assert http_client.is_server_ready()
    assert http_client.is_model_ready("iris")
    assert http_client.get_model_metadata("iris")["versions"] == ["1"]
    tensor = triton_http.InferInput("input", [2, 4], "FP32")
    tensor.set_data_from_numpy(ROWS, binary_data=False)
    result = http_client.infer(
        "iris", [tensor], outputs=[triton_http.InferRequestedOutput("label", binary_data=False)]
    )
    assert result.as_numpy("label").tolist() == [0, 2]
