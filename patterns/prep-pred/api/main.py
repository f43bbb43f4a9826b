"""prep-pred api: an uploaded image in, the digit out; preprocessing and inference apart.

``POST /predict`` takes one image (PNG or JPEG, any size, colour or grey) as
the raw body with an ``image/*`` content type, or as a multipart form upload.
The api checks the envelope (content type, empty body), then:

* simple (``VARIANT=simple``): api -> prep -> pred. The api sends the image to
  prep, which preprocesses it and calls the predictor itself (a chain).
* microservice (``VARIANT=microservice``): the api calls prep for the model's
  input tensor, then calls the predictor with it (the api orchestrates).

Every hop is the Open Inference Protocol over gRPC with one deadline for the
whole request (``REQUEST_TIMEOUT_S``). The answer is the shared contract
(label and probabilities, model name and version) plus ``variant`` and
``stages``: each stage's time and the service that ran it.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path
from typing import Any, Literal

import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response

from shared.kit.app import add_hot_route, add_model_route, create_app, json_response
from shared.kit.errors import InvalidInput, ServiceError
from shared.kit.health import Check
from shared.kit.metrics import stage
from shared.kit.schemas import Prediction, prediction_body
from shared.kit.settings import ServiceSettings
from shared.mechanisms.chain import Chain
from shared.model.metadata import ModelMetadata, load_metadata
from shared.v2.client import V2Client
from shared.v2.peers import ModelPeer, PeerCallSettings, connected

IMAGE_TYPES = "image/png or image/jpeg (or any image/*), or multipart/form-data with one file"


class UnsupportedMediaType(ServiceError):
    """The body's content type is not one the endpoint takes (415)."""

    status = 415
    code = "unsupported_media_type"


class Settings(ServiceSettings, PeerCallSettings):
    """The api's settings: the model, the variant, the peers and the request deadline."""

    model_dir: Path = Field(Path("/models"), description="Model repository (metadata only).")
    model_name: str = "digits"
    model_version: str | None = Field(None, description="None: the highest version.")
    variant: Literal["simple", "microservice"] = "simple"
    prep_url: str = Field(description="host:port of the prep service (gRPC).")
    pred_url: str = Field("", description="host:port of the predictor (microservice variant).")
    request_timeout_s: float = Field(2.0, gt=0, description="Deadline of the whole request.")
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1, description="Larger bodies get 413.")


settings = Settings()
metadata: ModelMetadata = load_metadata(
    settings.model_dir, settings.model_name, settings.model_version
)
PREP_MODEL = f"{metadata.name}-prep"
MICROSERVICE = settings.variant == "microservice"
if MICROSERVICE and not settings.pred_url:
    raise ValueError("VARIANT=microservice needs PRED_URL (host:port of the predictor)")
#: What the api asks prep for: the model's input (microservice) or its answer (simple).
PREP_ASKS = PREP_MODEL if MICROSERVICE else metadata.name


def prep_ready(prep: V2Client) -> Check:
    """Readiness: prep answers (and, in the simple variant, its predictor serves the model)."""

    async def check() -> str | None:
        if not await prep.ready(PREP_ASKS, metadata.version):
            return f"prep at {settings.prep_url} is unreachable or not ready to serve {PREP_ASKS}"
        return None

    return check


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """One channel to prep (and to the predictor) for the life of the process."""
    state = app.state
    state.prep = V2Client(settings.prep_url, settings.request_timeout_s, "prep", settings)
    state.readiness.add("prep", prep_ready(state.prep))
    # The model, on pred: called by the api (microservice) or by prep (simple).
    state.model = pred = ModelPeer(role="pred", url=settings.pred_url, metadata=metadata)
    peers = [pred] if MICROSERVICE else []
    if MICROSERVICE:
        state.readiness.add("pred", pred.check_ready)
    async with connected(peers, settings.request_timeout_s, settings):
        yield
    await state.prep.close()


app = create_app(
    settings,
    title="prep-pred",
    description=(
        "Upload an image of a digit; a prep service (Pillow) makes the model's input and a "
        f"predictor (onnxruntime) runs the model. Variant: {settings.variant}."
    ),
    lifespan=lifespan,
)


class StageTime(BaseModel):
    """One stage: its name, the service that ran it, how long it took."""

    stage: str
    service: str
    ms: float


class ImagePredictResponse(BaseModel):
    """The image's answer, the model, the variant, and each stage's time."""

    predictions: list[Prediction]
    model_name: str
    model_version: str
    variant: str
    stages: list[StageTime]


def image_from(content_type: str, body: bytes) -> bytes:
    """The image bytes of a raw ``image/*`` body or of a multipart upload's file part."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type.startswith("image/"):
        image = body
    elif media_type == "multipart/form-data":
        image = file_part(content_type, body)
    else:
        shown = media_type or "no content type"
        raise UnsupportedMediaType(f"{shown} is not an image; send {IMAGE_TYPES}", field="body")
    if not image:
        raise InvalidInput("the image is empty; send a PNG or JPEG image", field="body")
    return image


def file_part(content_type: str, body: bytes) -> bytes:
    """The content of the file of a multipart/form-data body (the part with a file name,
    or the field named ``file`` or ``image``)."""
    if "boundary=" not in content_type:
        raise InvalidInput("multipart/form-data without a boundary", field="body")
    header = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=HTTP).parsebytes(header + body)
    parts = list(message.iter_parts()) if message.is_multipart() else []
    files = [part for part in parts if part.get_filename()] or [
        part
        for part in parts
        if part.get_param("name", header="content-disposition") in ("file", "image")
    ]
    if not files:
        raise InvalidInput(
            "the multipart body has no file; upload the image as a file (curl -F file=@digit.png)",
            field="file",
        )
    return files[0].get_payload(decode=True) or b""


def prep_stages(parameters: dict[str, Any]) -> list[dict[str, Any]]:
    """The stages prep reported for one call (times in microseconds), as stage times."""
    names = {"preprocess_us": "preprocess", "pred_us": "pred"}
    return [
        {"stage": names[key], "service": "prep", "ms": round(parameters[key] / 1000, 3)}
        for key in names
        if key in parameters
    ]


async def predict(request: Request) -> Response:
    """The digit in the uploaded image (label and probabilities) and each stage's time."""
    prep, pred = request.app.state.prep, request.app.state.model
    with stage("decode"):
        data = image_from(request.headers.get("content-type", ""), await request.body())
        image = np.frombuffer(data, dtype=np.uint8)
    chain = Chain(settings.request_timeout_s)
    reported: dict[str, Any] = {}
    prep_output = metadata.input.name if MICROSERVICE else "probabilities"
    outputs = await chain.call(
        "prep",
        lambda left_s: prep.infer(
            PREP_ASKS,
            {"image": image},
            [prep_output],
            metadata.version,
            left_s,
            parameters=reported,
        ),
        service="api",
    )
    stages = chain.timings[:1] + prep_stages(reported)
    if MICROSERVICE:
        rows = outputs[metadata.input.name]
        outputs = await chain.call(
            "pred", lambda left_s: pred.infer(rows, ["probabilities"], left_s), service="api"
        )
        stages.append(chain.timings[-1])
    body = prediction_body(metadata, outputs["probabilities"])
    body["variant"] = settings.variant
    body["stages"] = stages
    return json_response(body)


IMAGE_BODY = {
    "required": True,
    "description": "One image: the raw bytes with an image/* content type, or a form upload.",
    "content": {
        "image/*": {"schema": {"type": "string", "format": "binary"}},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
                "required": ["file"],
            }
        },
    },
}
add_hot_route(
    app,
    "/predict",
    predict,
    request_model=None,
    response_model=ImagePredictResponse,
    request_body=IMAGE_BODY,
)


add_model_route(app)
