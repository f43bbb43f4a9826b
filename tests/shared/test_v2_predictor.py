"""The predictor speaks the Open Inference Protocol, to stock clients and to ours."""

import os
import subprocess
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest

from compose.locks import lock_of
from conftest import REPO_ROOT, PredictorProcess
from shared.v2.proto import inference_pb2 as pb
from shared.v2.proto import inference_pb2_grpc as pb_grpc
from tests.venvs import locked_venv

ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
INTEROP = Path(__file__).with_name("tritonclient_interop.py")


@pytest.fixture(scope="session")
def interop_python() -> Path:
    """The Python of .venv-interop: tritonclient and its protobuf < 7, apart from ours."""
    return locked_venv(REPO_ROOT / ".venv-interop", lock_of("interop"))


def test_stock_tritonclient_grpc_and_http_interoperate(
    predictor_server: PredictorProcess, interop_python: Path
) -> None:
    """Health, metadata, inference and the protocol's errors through tritonclient,
    run in its own venv against the predictor this test started."""
    env = {
        **os.environ,
        "PREDICTOR_GRPC": predictor_server.grpc_target,
        "PREDICTOR_REST": predictor_server.rest_url.removeprefix("http://"),
    }
    # --confcutdir: the repository's conftest.py needs packages only the dev venv has.
    pytest_options = ["-q", "-p", "no:cacheprovider", "--confcutdir", str(INTEROP.parent)]
    result = subprocess.run(
        [interop_python, "-m", "pytest", *pytest_options, str(INTEROP)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout


def test_typed_contents_and_lying_raw_lengths(predictor_server: PredictorProcess) -> None:
    with grpc.insecure_channel(predictor_server.grpc_target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        request = pb.ModelInferRequest(model_name="iris")
        request.inputs.add(name="input", datatype="FP32", shape=[2, 4])
        request.inputs[0].contents.fp32_contents.extend(ROWS.ravel().tolist())
        answer = stub.ModelInfer(request)
        assert list(answer.outputs[0].contents.int64_contents) == [0, 2]
        assert not answer.raw_output_contents

        lying = pb.ModelInferRequest(model_name="iris")
        lying.inputs.add(name="input", datatype="FP32", shape=[1_000_000_000, 4])
        lying.raw_input_contents.append(ROWS.tobytes())
        with pytest.raises(grpc.RpcError) as caught:
            stub.ModelInfer(lying)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "more than 16000000 elements" in caught.value.details()


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/v2/models/tulip/infer", {"inputs": []}, 404, "unknown model 'tulip'"),
        ("/v2/models/iris/versions/9/infer", {"inputs": []}, 404, "no version '9'"),
        ("/v2/models/iris/infer", {"inputs": 3}, 400, "'inputs' list"),
        (
            "/v2/models/iris/infer",
            {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2]}]},
            400,
            "2 values in 'data' for shape [1, 4]",
        ),
        (
            "/v2/models/iris/infer",
            {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "INT64", "data": [1] * 4}]},
            400,
            "datatype INT64; the model takes FP32",
        ),
    ],
)
def test_rest_errors_are_protocol_error_bodies(
    predictor_server: PredictorProcess, path: str, body: object, status: int, message: str
) -> None:
    answer = httpx.post(predictor_server.rest_url + path, json=body)
    assert answer.status_code == status
    assert set(answer.json()) == {"error"}
    assert message in answer.json()["error"]


def test_rest_inference_with_nested_data(predictor_server: PredictorProcess) -> None:
    body = {
        "id": "req-1",
        "inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "data": ROWS.tolist()}],
        "outputs": [{"name": "probabilities"}],
    }
    answer = httpx.post(f"{predictor_server.rest_url}/v2/models/iris/infer", json=body).json()
    assert answer["id"] == "req-1"
    assert (answer["model_name"], answer["model_version"]) == ("iris", "1")
    (output,) = answer["outputs"]
    assert (output["name"], output["datatype"], output["shape"]) == (
        "probabilities",
        "FP32",
        [2, 3],
    )
    assert len(output["data"]) == 6
