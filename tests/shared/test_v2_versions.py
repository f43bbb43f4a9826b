"""A predictor serves every version of a model; a request naming none gets MODEL_VERSION."""

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest

from conftest import PredictorProcess, _free_port, running_predictor
from shared.model.metadata import ModelError
from shared.v2.proto import inference_pb2 as pb
from shared.v2.proto import inference_pb2_grpc as pb_grpc
from shared.v2.repository import ModelRepository

ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
BODY = {
    "inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "data": ROWS.tolist()}],
    "outputs": [{"name": "probabilities"}],
}


@pytest.fixture(scope="module")
def predictor_of_both(versioned_model_repo: Path) -> Iterator[PredictorProcess]:
    """A predictor of iris 1 and 2 whose default is version 1."""
    with running_predictor(versioned_model_repo, MODELS="iris", MODEL_VERSION="1") as predictor:
        yield predictor


def infer_grpc(target: str, version: str) -> pb.ModelInferResponse:
    with grpc.insecure_channel(target) as channel:
        request = pb.ModelInferRequest(model_name="iris", model_version=version)
        request.inputs.add(name="input", datatype="FP32", shape=list(ROWS.shape))
        request.raw_input_contents.append(ROWS.tobytes())
        request.outputs.add(name="probabilities")
        return pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=5)


def probabilities(answer: pb.ModelInferResponse) -> np.ndarray:
    return np.frombuffer(answer.raw_output_contents[0], dtype=np.float32)


def test_rest_serves_each_version_and_the_default(predictor_of_both: PredictorProcess) -> None:
    base = f"{predictor_of_both.rest_url}/v2/models/iris"
    default = httpx.post(f"{base}/infer", json=BODY).json()
    one = httpx.post(f"{base}/versions/1/infer", json=BODY).json()
    two = httpx.post(f"{base}/versions/2/infer", json=BODY).json()
    assert [a["model_version"] for a in (default, one, two)] == ["1", "1", "2"]
    assert default["outputs"] == one["outputs"] != two["outputs"]
    assert httpx.get(base).json()["versions"] == ["1", "2"]
    assert httpx.get(f"{base}/versions/2/ready").json()["ready"] is True


def test_grpc_serves_each_version_and_the_default(predictor_of_both: PredictorProcess) -> None:
    target = predictor_of_both.grpc_target
    default, one, two = (infer_grpc(target, v) for v in ("", "1", "2"))
    assert [a.model_version for a in (default, one, two)] == ["1", "1", "2"]
    assert np.array_equal(probabilities(default), probabilities(one))
    assert not np.array_equal(probabilities(one), probabilities(two))


def test_a_version_it_lacks_is_not_found_by_name(predictor_of_both: PredictorProcess) -> None:
    answer = httpx.post(f"{predictor_of_both.rest_url}/v2/models/iris/versions/7/infer", json=BODY)
    assert answer.status_code == 404
    assert answer.json()["error"] == "model 'iris' has no version '7'; served: 1, 2"
    with pytest.raises(grpc.RpcError) as caught:
        infer_grpc(predictor_of_both.grpc_target, "7")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no version '7'" in caught.value.details()


def test_the_default_is_the_highest_without_model_version(versioned_model_repo: Path) -> None:
    repository = ModelRepository.load(versioned_model_repo, ["iris"])
    assert repository.get("iris").metadata.version == "2"
    pinned = ModelRepository.load(versioned_model_repo, ["iris:1"])
    assert sorted(pinned.versions["iris"]) == ["1"]


def test_a_default_version_the_model_lacks_is_refused(versioned_model_repo: Path) -> None:
    with pytest.raises(ModelError, match="no version '3' to serve by default; it has 1, 2"):
        ModelRepository.load(versioned_model_repo, ["iris"], default_version="3")


def test_the_predictor_refuses_to_start_on_an_unknown_model_version(
    versioned_model_repo: Path,
) -> None:
    env = {"MODEL_DIR": str(versioned_model_repo), "MODELS": "iris", "MODEL_VERSION": "3"}
    result = subprocess.run(
        [sys.executable, "-m", "shared.v2.server"],
        env={**env, "PATH": "/usr/bin:/bin", "PORT": str(_free_port()), "GRPC_PORT": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "refusing to start: model 'iris' has no version '3'" in result.stdout + result.stderr


def test_versions_of_one_model_must_be_interchangeable(
    versioned_model_repo: Path, tmp_path: Path
) -> None:
    repo = tmp_path / "models"
    (repo / "iris").mkdir(parents=True)
    for version in ("1", "2"):
        (repo / "iris" / version).symlink_to(versioned_model_repo / "iris" / version)
    (repo / "iris" / "3").symlink_to(versioned_model_repo / "iris-specialist" / "1")
    with pytest.raises(ModelError):  # its metadata says iris-specialist: refused as it loads
        ModelRepository.load(repo, ["iris"])
