"""V2Client: answers as numpy, and the api's errors when the predictor is down or slow."""

import asyncio
from collections.abc import AsyncIterator

import grpc
import numpy as np
import pytest

from conftest import PredictorProcess, _free_port
from shared.kit.errors import DependencyTimeout, DependencyUnavailable, InvalidInput
from shared.kit.logs import request_id_var
from shared.v2.client import V2Client
from shared.v2.proto import inference_pb2 as pb
from shared.v2.proto import inference_pb2_grpc as pb_grpc

ROWS = np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)


async def test_infer_returns_the_requested_outputs(predictor_server: PredictorProcess) -> None:
    client = V2Client(predictor_server.grpc_target, timeout_s=5)
    try:
        assert await client.ready()
        assert await client.ready("iris", "1")
        assert not await client.ready("iris", "2")
        outputs = await client.infer("iris", {"input": ROWS}, ["probabilities"], "1")
        assert list(outputs) == ["probabilities"]
        assert outputs["probabilities"].shape == (1, 3)
        assert outputs["probabilities"].argmax() == 0
        with pytest.raises(InvalidInput, match="predictor refused the input"):
            await client.infer("iris", {"input": ROWS[:, :2].copy()}, ["probabilities"])
    finally:
        await client.close()


async def test_nothing_listening_is_503() -> None:
    client = V2Client(f"127.0.0.1:{_free_port()}", timeout_s=2)
    try:
        assert not await client.ready()
        with pytest.raises(DependencyUnavailable, match="predictor is unavailable"):
            await client.infer("iris", {"input": ROWS}, ["probabilities"])
    finally:
        await client.close()


class SlowServicer(pb_grpc.GRPCInferenceServiceServicer):
    """Answers after a delay, and remembers the request ids it saw."""

    def __init__(self) -> None:
        self.request_ids: list[str] = []

    async def ModelInfer(self, request, context):  # noqa: N802 - the protocol's name
        self.request_ids += [v for k, v in context.invocation_metadata() if k == "x-request-id"]
        await asyncio.sleep(1.0)
        return pb.ModelInferResponse()


@pytest.fixture
async def slow_server() -> AsyncIterator[tuple[str, SlowServicer]]:
    servicer = SlowServicer()
    server = grpc.aio.server()
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}", servicer
    await server.stop(0)


async def test_a_slow_predictor_is_504_and_gets_the_request_id(slow_server) -> None:
    target, servicer = slow_server
    client = V2Client(target, timeout_s=0.2)
    token = request_id_var.set("trace-42")
    try:
        with pytest.raises(DependencyTimeout, match=r"did not answer within 0\.2 s"):
            await client.infer("iris", {"input": ROWS}, ["probabilities"])
    finally:
        request_id_var.reset(token)
        await client.close()
    assert servicer.request_ids == ["trace-42"]
