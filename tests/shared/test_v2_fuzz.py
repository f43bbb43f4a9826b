"""Generated V2 inference requests, REST and gRPC: no crash, no 5xx, bounded memory.

The predictor runs in this process (REST through a ``TestClient``, gRPC on a grpc.aio
server in a thread), so ``tracemalloc`` sees what decoding a request allocates: a shape
declared huge with little data behind it must be refused before anything that size is
allocated. Every answer must be the protocol's: 200, or 400/404 (REST) and
INVALID_ARGUMENT/NOT_FOUND (gRPC) with a message; never 500/INTERNAL or a dropped
connection. Example counts are bounded and derandomised.
"""

import asyncio
import socket
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from shared.v2.proto import inference_pb2 as pb
from shared.v2.proto import inference_pb2_grpc as pb_grpc
from shared.v2.repository import ModelRepository
from shared.v2.server import PredictorSettings, build_app, build_grpc_server
from shared.v2.tensors import CONTENTS_FIELDS, DTYPES

FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
#: What decoding any one fuzzed request may allocate at most (traced by tracemalloc).
MEMORY_BOUND = 32 * 1024 * 1024
MODELS = ["iris", "iris-boosted"]
DATATYPES = [*DTYPES, "BYTES", "fp32", ""]
HUGE = 2**40

dims = st.one_of(
    st.integers(min_value=0, max_value=8),
    st.integers(min_value=-3, max_value=-1),
    st.sampled_from([HUGE, 2**31 - 1, 16_000_000, 2**62]),
)
shapes = st.lists(dims, max_size=4)
scalars = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=1 - 2**63, max_value=2**64 - 1),
    st.booleans(),
    st.text(max_size=3),
    st.none(),
)
json_data = st.recursive(st.lists(scalars, max_size=12), lambda inner: st.lists(inner, max_size=4))


JUNK: dict[str, st.SearchStrategy[Any]] = {
    "name": st.sampled_from(["x", "", 3, None, ["input"]]),
    "datatype": st.sampled_from([*DATATYPES, ["FP32"], {"FP32": 1}, 3, None, True]),
    "shape": st.one_of(shapes, st.sampled_from(["ab", {"a": 1}, 4, None, [[2], 4], [2.0, 4]])),
    "data": st.one_of(json_data, scalars),
}


@st.composite
def rest_tensor(draw: st.DrawFn) -> Any:
    """An ``inputs[i]`` item the iris models take, with up to two of its fields made odd."""
    rows = draw(st.integers(0, 5))
    datatype = draw(st.sampled_from(["FP32", "FP32", *DTYPES]))
    values = st.booleans() if datatype == "BOOL" else st.floats(-1e6, 1e6, width=32)
    if datatype.startswith(("INT", "UINT")):
        values = st.integers(0, 100)
    tensor: dict[str, Any] = {
        "name": "input",
        "datatype": datatype,
        "shape": [rows, 4],
        "data": draw(st.lists(values, min_size=rows * 4, max_size=rows * 4)),
    }
    if draw(st.booleans()):  # nested rows instead of flat
        tensor["data"] = [tensor["data"][i : i + 4] for i in range(0, rows * 4, 4)]
    odd = draw(st.sampled_from([0, 0, 1, 1, 1, 2]))
    for _ in range(odd):
        key = draw(st.sampled_from(sorted(JUNK)))
        tensor[key] = draw(JUNK[key])
    if draw(st.sampled_from([False] * 9 + [True])):
        del tensor[draw(st.sampled_from(sorted(tensor)))]
    return tensor if draw(st.sampled_from([True] * 9 + [False])) else draw(scalars)


rest_bodies = st.one_of(
    st.fixed_dictionaries(
        {"inputs": st.lists(rest_tensor(), min_size=1, max_size=1)},
    ),
    st.fixed_dictionaries(
        {"inputs": st.lists(rest_tensor(), min_size=1, max_size=2)},
        optional={
            "id": st.one_of(st.text(max_size=4), scalars),
            "outputs": st.one_of(
                st.lists(st.fixed_dictionaries({"name": st.sampled_from(["label", "x", 1])})),
                scalars,
            ),
        },
    ),
    scalars,
    json_data,
)


@pytest.fixture(scope="module")
def repository(model_repo: Path) -> ModelRepository:
    return ModelRepository.load(model_repo, ["iris", "iris-boosted"])


@pytest.fixture(scope="module")
def rest(repository: ModelRepository) -> Iterator[TestClient]:
    app = build_app(repository, PredictorSettings(access_log=False))
    with TestClient(app, raise_server_exceptions=True) as client:
        yield client


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def grpc_stub(repository: ModelRepository) -> Iterator[pb_grpc.GRPCInferenceServiceStub]:
    """The predictor's gRPC server on a free port, its event loop in a thread."""
    settings = PredictorSettings(host="127.0.0.1", grpc_port=_free_port())
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def run(coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(30)

    async def build() -> grpc.aio.Server:  # grpc.aio servers belong to the loop that made them
        return build_grpc_server(repository, settings)

    server = run(build())
    run(server.start())
    with grpc.insecure_channel(f"127.0.0.1:{settings.grpc_port}") as channel:
        yield pb_grpc.GRPCInferenceServiceStub(channel)
    run(server.stop(0))
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


class PeakMemory:
    """Traced allocation peaks per request, and the requests over :data:`MEMORY_BOUND`.

    tracemalloc sees every thread of the process, so a peak over the bound is
    checked by sending the same request again: only one that is over twice counts
    (the message names it).
    """

    def __init__(self) -> None:
        self.peak = 0
        self.offenders: list[str] = []

    def __enter__(self) -> "PeakMemory":
        tracemalloc.start()
        return self

    def measure(self) -> int:
        """The peak since the last call (and start the next measurement)."""
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        tracemalloc.clear_traces()
        return peak

    def check(self, send: Callable[[], object], what: object) -> None:
        """Send once; when over the bound, once more; record ``what`` if over twice."""
        send()
        peak = self.measure()
        if peak >= MEMORY_BOUND:
            send()
            peak = min(peak, self.measure())
            if peak >= MEMORY_BOUND:
                self.offenders.append(f"{peak} bytes for {str(what)[:300]}")
        self.peak = max(self.peak, peak)

    def __exit__(self, *_: object) -> None:
        tracemalloc.stop()


def test_rest_inference_survives_generated_bodies(rest: TestClient) -> None:
    with PeakMemory() as memory:

        @FUZZ
        @given(model=st.sampled_from(MODELS), body=rest_bodies)
        def check(model: str, body: Any) -> None:
            answers = []

            def send() -> None:
                content = orjson.dumps(body)
                answers.append(rest.post(f"/v2/models/{model}/infer", content=content))

            memory.check(send, body)
            answer = answers[-1]
            assert answer.status_code in (200, 400, 404), answer.text
            if answer.status_code != 200:
                assert isinstance(answer.json()["error"], str)

        check()
    assert not memory.offenders, "requests made the server allocate too much:\n" + "\n".join(
        memory.offenders
    )


CONTENT_VALUES = {
    "bool_contents": st.booleans(),
    "fp32_contents": st.floats(width=32),
    "fp64_contents": st.floats(),
    "int_contents": st.integers(-(2**31), 2**31 - 1),
    "int64_contents": st.integers(-(2**63), 2**63 - 1),
    "uint_contents": st.integers(0, 2**32 - 1),
    "uint64_contents": st.integers(0, 2**64 - 1),
}


@st.composite
def grpc_requests(draw: st.DrawFn) -> pb.ModelInferRequest:
    """A ModelInferRequest with odd datatypes, shapes, typed contents or raw byte lengths."""
    request = pb.ModelInferRequest(model_name=draw(st.sampled_from(MODELS)))
    raw = draw(st.booleans())
    for _ in range(draw(st.integers(0, 2))):
        datatype = draw(st.sampled_from(DATATYPES))
        shape = draw(shapes)
        tensor = request.inputs.add(
            name=draw(st.sampled_from(["input", "x", ""])), datatype=datatype, shape=shape
        )
        itemsize = DTYPES[datatype].itemsize if datatype in DTYPES else 4
        count = int(np.prod(shape)) if all(0 <= d <= 8 for d in shape) else 0
        if raw:  # as many bytes as the shape declares, or any other length
            length = draw(st.one_of(st.just(count * itemsize), st.integers(0, 64)))
            request.raw_input_contents.append(draw(st.binary(min_size=length, max_size=length)))
        else:  # the datatype's own contents field, or another one
            field = draw(
                st.one_of(
                    st.just(CONTENTS_FIELDS.get(datatype, "fp32_contents")),
                    st.sampled_from(sorted(CONTENT_VALUES)),
                )
            )
            n = draw(st.one_of(st.just(count), st.integers(0, 20)))
            values = draw(st.lists(CONTENT_VALUES[field], min_size=n, max_size=n))
            getattr(tensor.contents, field).extend(values)
    if raw and draw(st.booleans()):
        request.raw_input_contents.append(b"\x00" * draw(st.integers(0, 16)))  # one too many
    if draw(st.booleans()):
        request.outputs.add(name=draw(st.sampled_from(["label", "probabilities", "x"])))
    return request


def test_grpc_inference_survives_generated_requests(
    grpc_stub: pb_grpc.GRPCInferenceServiceStub,
) -> None:
    allowed = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND}
    with PeakMemory() as memory:

        @FUZZ
        @given(request=grpc_requests())
        def check(request: pb.ModelInferRequest) -> None:
            outcomes = []

            def send() -> None:
                try:
                    grpc_stub.ModelInfer(request, timeout=10)
                    outcomes.append((grpc.StatusCode.OK, ""))
                except grpc.RpcError as exc:
                    outcomes.append((exc.code(), exc.details()))

            memory.check(send, request)
            code, details = outcomes[-1]
            assert code == grpc.StatusCode.OK or (code in allowed and details), f"{code}: {request}"

        check()
    assert not memory.offenders, "requests made the server allocate too much:\n" + "\n".join(
        memory.offenders
    )
