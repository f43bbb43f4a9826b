"""V2RestClient: the same answers and errors as the gRPC client, over the protocol's REST face."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from aiohttp import web

from conftest import PredictorProcess, _free_port
from shared.kit.errors import (
    DependencyTimeout,
    DependencyUnavailable,
    InvalidInput,
    PayloadTooLarge,
)
from shared.kit.logs import request_id_var
from shared.v2.client import V2Client
from shared.v2.peers import ModelPeer, connected, v2_client
from shared.v2.rest_client import V2RestClient

ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)


async def test_rest_answers_as_the_grpc_client_does(predictor_server: PredictorProcess) -> None:
    rest = V2RestClient(predictor_server.rest_url, timeout_s=5)
    grpc = V2Client(predictor_server.grpc_target, timeout_s=5)
    try:
        assert await rest.ready()
        assert await rest.ready("iris", "1")
        assert not await rest.ready("iris", "2")
        over_rest = await rest.infer("iris", {"input": ROWS}, ["probabilities", "label"], "1")
        over_grpc = await grpc.infer("iris", {"input": ROWS}, ["probabilities", "label"], "1")
        assert list(over_rest) == ["probabilities", "label"]
        for name, array in over_grpc.items():
            assert over_rest[name].dtype == array.dtype
            np.testing.assert_array_equal(over_rest[name], array)
    finally:
        await asyncio.gather(rest.close(), grpc.close())


async def test_refusals_are_the_apis_errors_naming_the_peer(
    predictor_server: PredictorProcess,
) -> None:
    client = V2RestClient(predictor_server.rest_url, timeout_s=5, peer="forest")
    try:
        with pytest.raises(InvalidInput, match=r"^forest refused the input: tensor 'input'"):
            await client.infer("iris", {"input": ROWS[:, :2].copy()}, ["probabilities"])
        with pytest.raises(DependencyUnavailable, match=r"^forest failed: HTTP 404$"):
            await client.infer("no-such-model", {"input": ROWS}, ["probabilities"])
    finally:
        await client.close()


async def test_nothing_listening_is_503_and_not_ready() -> None:
    client = V2RestClient(f"http://127.0.0.1:{_free_port()}", timeout_s=2)
    try:
        assert not await client.ready()
        with pytest.raises(DependencyUnavailable, match=r"^predictor is unavailable; retry"):
            await client.infer("iris", {"input": ROWS}, ["probabilities"])
    finally:
        await client.close()


@pytest.fixture
async def odd_server() -> AsyncIterator[tuple[str, list[str]]]:
    """A server that is slow on /slow, 413 on /big, garbage on /bad; keeps request ids."""
    seen: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(request.headers.get("x-request-id", ""))
        model = request.match_info["model"]
        if model == "slow":
            await asyncio.sleep(1)
        if model == "big":
            return web.json_response({"error": "body over 8 MiB"}, status=413)
        return web.Response(body=b"not json", content_type="application/json")

    app = web.Application()
    app.router.add_post("/v2/models/{model}/infer", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


async def test_slow_too_large_and_malformed_answers(odd_server: tuple[str, list[str]]) -> None:
    url, seen = odd_server
    client = V2RestClient(url, timeout_s=0.2)
    token = request_id_var.set("trace-7")
    try:
        with pytest.raises(DependencyTimeout, match=r"^predictor did not answer within 0\.2 s$"):
            await client.infer("slow", {"input": ROWS}, ["probabilities"])
        with pytest.raises(PayloadTooLarge, match="too large: body over 8 MiB"):
            await client.infer("big", {"input": ROWS}, ["probabilities"])
        with pytest.raises(DependencyUnavailable, match=r"^predictor failed: a malformed answer$"):
            await client.infer("bad", {"input": ROWS}, ["probabilities"])
    finally:
        request_id_var.reset(token)
        await client.close()
    assert seen == ["trace-7"] * 3


async def test_a_peer_with_an_http_url_calls_over_rest(
    model_repo: Path, predictor_server: PredictorProcess
) -> None:
    assert isinstance(v2_client("predictor:8081", 1, "p"), V2Client)
    peer = ModelPeer.from_repository("predictor", predictor_server.rest_url, model_repo, "iris")
    async with connected([peer], timeout_s=2):
        assert isinstance(peer.client, V2RestClient)
        assert await peer.check_ready() is None
        answers = await asyncio.gather(*(peer.infer(ROWS[i : i + 1], ["label"]) for i in (0, 1)))
    assert [a["label"].tolist() for a in answers] == [[0], [2]]
