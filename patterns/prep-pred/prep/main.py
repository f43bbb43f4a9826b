"""prep: uploaded images to the digits model's input, as an Open Inference Protocol server.

The prep service decodes, converts, resizes and normalises an image
(:mod:`shared.mechanisms.digit_images`: Pillow and numpy; its image has no onnxruntime). It
speaks the same protocol as the predictor (gRPC on ``GRPC_PORT``), with the
encoded image as a ``UINT8`` tensor ``image`` of shape ``[n_bytes]``, and
serves two "models":

* ``<model>-prep`` (microservice variant): answers the model's input tensor
  (``FP32 [1, 64]``); the api then calls the predictor itself.
* ``<model>`` (simple variant, ``VARIANT=simple``): preprocesses, calls the
  predictor (``PRED_URL``) with what is left of the caller's deadline, and
  answers the model's ``probabilities``, like a Triton ensemble or a KServe
  transformer in front of its predictor.

Each answer carries the time of its stages as parameters (``preprocess_us``,
``pred_us``). Bad images are refused with INVALID_ARGUMENT (not an image,
truncated, empty) or RESOURCE_EXHAUSTED (too many pixels), which the api
turns into 422 and 413. HTTP on ``PORT``: ``/health/*`` and ``/metrics``.
"""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import grpc
import numpy as np
from fastapi import FastAPI
from pydantic import Field

from shared.kit.app import create_app
from shared.kit.errors import ServiceError
from shared.kit.metrics import record_model, stage
from shared.kit.settings import ServiceSettings
from shared.mechanisms.digit_images import (
    MAX_PIXELS,
    DigitImageSpec,
    ImageError,
    open_image,
    opened_to_digits,
)
from shared.model.metadata import ModelError, ModelMetadata, load_metadata
from shared.v2 import tensors
from shared.v2.grpc_server import StatusError, rpc
from shared.v2.peers import ModelPeer, PeerCallSettings, connected
from shared.v2.proto import inference_pb2 as pb
from shared.v2.proto import inference_pb2_grpc as pb_grpc
from shared.v2.repository import ModelNotFound
from shared.v2.server import GrpcSettings, grpc_server_for, serving

IMAGE_INPUT = "image"
#: Images of more pixels than this are decoded in a worker thread, off the event loop
#: (a 4-megapixel PNG takes about 0.1 s; small ones cost less than the thread hop).
THREAD_ABOVE_PIXELS = 1_000_000
#: What a ServiceError of the predictor call becomes at the gRPC face.
GRPC_CODES = {
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


class Settings(ServiceSettings, GrpcSettings, PeerCallSettings):
    """The prep service's settings: the model whose input it makes, the variant, limits."""

    service_name: str = "prep"
    model_dir: Path = Field(Path("/models"), description="Model repository (metadata only).")
    model_name: str = "digits"
    model_version: str | None = Field(None, description="None: the highest version.")
    variant: Literal["simple", "microservice"] = Field(
        "simple", description="simple: prep calls the predictor; microservice: the api does."
    )
    pred_url: str = Field("", description="host:port of the predictor (gRPC); simple variant.")
    pred_timeout_s: float = Field(1.0, gt=0, description="Deadline of a predictor call.")
    max_pixels: int = Field(MAX_PIXELS, ge=64, description="Larger images are refused (413).")
    grpc_max_message_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="Larger gRPC messages are refused."
    )


settings = Settings()


def _us(started: float) -> int:
    return round((time.perf_counter() - started) * 1_000_000)


@dataclass(frozen=True)
class Prep:
    """What this service makes images into (the model's input) and, in the simple variant,
    the predictor it hands them to. Made in the lifespan."""

    metadata: ModelMetadata
    spec: DigitImageSpec
    pred: ModelPeer | None  # the simple variant's predictor

    @classmethod
    def from_settings(cls, settings: Settings) -> "Prep":
        """Read the model's metadata; :class:`ModelError` when its input is not a square image
        or the simple variant has no predictor to call."""
        metadata = load_metadata(settings.model_dir, settings.model_name, settings.model_version)
        width = metadata.input.shape[-1]
        side = round(width**0.5)
        if side * side != width:
            raise ModelError(f"model {metadata.name!r} takes {width} values, not a square image")
        max_value = float(metadata.training.get("image", {}).get("max_value", 16))
        spec = DigitImageSpec(side=side, max_value=max_value, max_pixels=settings.max_pixels)
        pred = None
        if settings.variant == "simple":
            if not settings.pred_url:
                raise ModelError("VARIANT=simple needs PRED_URL (host:port of the predictor)")
            pred = ModelPeer(role="pred", url=settings.pred_url, metadata=metadata)
        return cls(metadata, spec, pred)

    @property
    def prep_model(self) -> str:
        """The name this service answers preprocessing alone under."""
        return f"{self.metadata.name}-prep"

    @property
    def width(self) -> int:
        """Values in a preprocessed row."""
        return self.metadata.input.shape[-1]

    async def preprocess(self, data: bytes) -> np.ndarray:
        """The image as a (1, width) float32 row; :class:`StatusError` for a bad image."""
        try:
            with stage("preprocess"):
                image = open_image(data, self.spec.max_pixels)  # the header only: cheap
                if image.width * image.height > THREAD_ABOVE_PIXELS:
                    return await asyncio.to_thread(opened_to_digits, image, self.spec)
                return opened_to_digits(image, self.spec)
        except ImageError as exc:
            code = GRPC_CODES.get(exc.status, grpc.StatusCode.INVALID_ARGUMENT)
            raise StatusError(code, str(exc)) from None


class PrepServicer(pb_grpc.GRPCInferenceServiceServicer):
    """``<model>-prep`` always; ``<model>`` (preprocess + predictor) in the simple variant."""

    def __init__(self, prep: Prep) -> None:
        self.prep = prep

    def served(self) -> list[str]:
        """The model names this server answers for."""
        prep = self.prep
        return [prep.prep_model, prep.metadata.name] if prep.pred else [prep.prep_model]

    def check_model(self, name: str, version: str) -> None:
        """:class:`ModelNotFound` unless ``name`` (at ``version``, when given) is served."""
        if name not in self.served():
            raise ModelNotFound(f"unknown model '{name}'; served: {', '.join(self.served())}")
        if version and version != self.prep.metadata.version:
            raise ModelNotFound(
                f"model '{name}' has no version '{version}'; served: {self.prep.metadata.version}"
            )

    @rpc
    async def ServerLive(self, request: pb.ServerLiveRequest, context) -> pb.ServerLiveResponse:  # noqa: N802
        """The process answers."""
        return pb.ServerLiveResponse(live=True)

    @rpc
    async def ServerReady(self, request: pb.ServerReadyRequest, context) -> pb.ServerReadyResponse:  # noqa: N802
        """Ready to preprocess (the predictor is checked per model: ModelReady)."""
        return pb.ServerReadyResponse(ready=True)

    @rpc
    async def ModelReady(self, request: pb.ModelReadyRequest, context) -> pb.ModelReadyResponse:  # noqa: N802
        """The model is served; for the chained model, the predictor serves it too."""
        self.check_model(request.name, request.version)
        pred = self.prep.pred
        if request.name == self.prep.metadata.name and pred is not None:
            return pb.ModelReadyResponse(ready=await pred.check_ready() is None)
        return pb.ModelReadyResponse(ready=True)

    @rpc
    async def ModelMetadata(  # noqa: N802
        self, request: pb.ModelMetadataRequest, context
    ) -> pb.ModelMetadataResponse:
        """The encoded image in; the model's input (prep) or its probabilities (chained) out."""
        self.check_model(request.name, request.version)
        tensor = pb.ModelMetadataResponse.TensorMetadata
        metadata, width = self.prep.metadata, self.prep.width
        if request.name == self.prep.prep_model:
            outputs = [tensor(name=metadata.input.name, datatype="FP32", shape=[1, width])]
        else:
            n_classes = len(metadata.labels)
            outputs = [tensor(name="probabilities", datatype="FP32", shape=[1, n_classes])]
        return pb.ModelMetadataResponse(
            name=request.name,
            versions=[metadata.version],
            platform="python_pillow",
            inputs=[tensor(name=IMAGE_INPUT, datatype="UINT8", shape=[-1])],
            outputs=outputs,
        )

    @rpc
    async def ModelInfer(self, request: pb.ModelInferRequest, context) -> pb.ModelInferResponse:  # noqa: N802
        """Preprocess the image; in the simple variant, run the model on it too."""
        self.check_model(request.model_name, request.model_version)
        data = self.image_bytes(request)
        started = time.perf_counter()
        row = await self.prep.preprocess(data)
        timings = {"preprocess_us": _us(started)}
        metadata = self.prep.metadata
        if request.model_name == self.prep.prep_model:
            results = {metadata.input.name: row}
        else:
            results = await self.predict(row, context, timings)
        response = pb.ModelInferResponse(
            model_name=request.model_name, model_version=metadata.version, id=request.id
        )
        for name, array in results.items():
            tensor, raw = tensors.to_grpc(name, array, raw=True)
            response.outputs.append(tensor)
            response.raw_output_contents.append(raw)
        for key, value in timings.items():
            response.parameters[key].int64_param = value
        return response

    @staticmethod
    def image_bytes(request: pb.ModelInferRequest) -> bytes:
        """The bytes of the one ``image`` input (UINT8, raw contents)."""
        names = [tensor.name for tensor in request.inputs]
        if names != [IMAGE_INPUT] or len(request.raw_input_contents) != 1:
            raise tensors.TensorError(
                f"send one input '{IMAGE_INPUT}' (UINT8 [n_bytes], raw contents); got {names}"
            )
        image = tensors.from_grpc(request.inputs[0], request.raw_input_contents[0])
        if image.dtype != np.uint8 or image.ndim != 1:
            raise tensors.TensorError(f"tensor '{IMAGE_INPUT}' must be UINT8 [n_bytes]")
        return request.raw_input_contents[0]

    async def predict(
        self, row: np.ndarray, context: grpc.aio.ServicerContext, timings: dict[str, int]
    ) -> dict[str, np.ndarray]:
        """The predictor's probabilities for ``row``, within the caller's deadline."""
        pred = self.prep.pred
        assert pred is not None
        left_s = context.time_remaining()
        timeout_s = (
            settings.pred_timeout_s if left_s is None else min(left_s, settings.pred_timeout_s)
        )
        started = time.perf_counter()
        try:
            with stage("pred_call"):
                return await pred.infer(row, ["probabilities"], timeout_s)
        except ServiceError as exc:
            code = GRPC_CODES.get(exc.status, grpc.StatusCode.UNAVAILABLE)
            raise StatusError(code, exc.message) from None
        finally:
            timings["pred_us"] = _us(started)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The model's input, the gRPC server and the channel to the predictor, for the life of
    the process.

    The server is made here, on the loop that serves it: a grpc.aio server made at import
    and never started would be freed by the garbage collector later, off its loop.
    """
    app.state.prep = prep = Prep.from_settings(settings)
    peers = [prep.pred] if prep.pred is not None else []
    if prep.pred is not None:
        app.state.readiness.add("pred", prep.pred.check_ready)
    grpc_server = grpc_server_for(PrepServicer(prep), settings, settings.host)
    record_model(prep.prep_model, prep.metadata.version, prep.metadata.sha256)
    async with (
        connected(peers, settings.pred_timeout_s, settings),
        serving(grpc_server, settings.grpc_port, settings.graceful_shutdown_s, app.state.readiness),
    ):
        yield


app = create_app(
    settings,
    title="prep",
    description="Image preprocessing for the digits model (gRPC on GRPC_PORT); health, metrics.",
    lifespan=lifespan,
)
