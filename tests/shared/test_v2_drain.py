"""A predictor told to stop drains first: it fails readiness (REST 503, gRPC health
NOT_SERVING) while it still answers every call, then stops; a second signal stops it at once."""

import signal
import time
from pathlib import Path

import grpc
import httpx
import numpy as np

from conftest import running_predictor
from shared.kit.probe import probe_grpc
from shared.v2.proto import inference_pb2 as pb
from shared.v2.proto import inference_pb2_grpc as pb_grpc

ROWS = np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)


def infer(channel: grpc.Channel) -> str:
    request = pb.ModelInferRequest(model_name="iris")
    request.inputs.add(name="input", datatype="FP32", shape=ROWS.shape)
    request.raw_input_contents.append(ROWS.tobytes())
    answer = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=2)
    return answer.model_name


def wait_until(condition, timeout_s: float = 5) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_stopping_predictor_fails_readiness_but_serves_until_it_stops(model_repo: Path) -> None:
    with running_predictor(model_repo, MODELS="iris", DRAIN_S="3") as predictor:
        rest = httpx.Client(base_url=predictor.rest_url, timeout=2)
        channel = grpc.insecure_channel(predictor.grpc_target)
        assert rest.get("/health/ready").status_code == 200
        predictor.process.send_signal(signal.SIGTERM)
        wait_until(lambda: rest.get("/health/ready").status_code == 503)
        assert rest.get("/health/ready").json()["checks"] == {
            "shutdown": "draining: the service is stopping"
        }
        assert not probe_grpc(predictor.grpc_target)  # health: NOT_SERVING
        assert infer(channel) == "iris"  # still served, over gRPC and REST
        assert rest.post("/v2/models/iris/infer", json=_rest_body()).status_code == 200
        assert predictor.process.poll() is None
        predictor.process.wait(timeout=15)  # then it stops by itself
        channel.close()
        rest.close()


def test_a_second_signal_stops_at_once(model_repo: Path) -> None:
    with running_predictor(model_repo, MODELS="iris", DRAIN_S="60") as predictor:
        rest = httpx.Client(base_url=predictor.rest_url, timeout=2)
        predictor.process.send_signal(signal.SIGTERM)
        wait_until(lambda: rest.get("/health/ready").status_code == 503)
        predictor.process.send_signal(signal.SIGTERM)
        predictor.process.wait(timeout=15)  # well before the 60 s drain
        rest.close()


def _rest_body() -> dict[str, object]:
    return {
        "inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": ROWS[0].tolist()}]
    }
