"""web-single: one container, the model in-process.

``POST /predict`` decodes the JSON rows, runs onnxruntime and answers, all in
the event loop: a few-microsecond inference gains nothing from a thread-pool hop.
Under concurrent load the requests of one loop turn share a model run
(:class:`turn_batch.TurnBatcher`); one request at a time runs at once.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from starlette.responses import Response
from turn_batch import TurnBatcher

from shared.kit.app import add_hot_route, create_app, json_response
from shared.kit.health import Readiness
from shared.kit.metrics import record_model, stage
from shared.kit.schemas import PredictRequest, PredictResponse, decode_rows, prediction_body
from shared.kit.settings import ModelSettings, ServiceSettings
from shared.model.runtime import ModelMetadata, OnnxModel, load_model


class Settings(ServiceSettings, ModelSettings):
    """web-single's settings: the HTTP server's and the model's."""


settings = Settings()
readiness = Readiness()
model: OnnxModel | None = None


async def model_loaded() -> str | None:
    """Readiness: the model is loaded and checked."""
    return None if model is not None else "model not loaded"


readiness.add("model", model_loaded)


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    """Load and check the model before taking traffic; a bad model stops the start."""
    global model  # noqa: PLW0603 - the one model this process serves
    model = load_model(
        settings.model_dir, settings.model_name, settings.model_version, settings.intra_op_threads
    )
    record_model(model.metadata.name, model.metadata.version, model.metadata.sha256)
    yield


app = create_app(
    settings,
    title="web-single",
    description="REST, preprocessing and the ONNX model in one process.",
    readiness=readiness,
    lifespan=lifespan,
)


def _model() -> OnnxModel:
    assert model is not None, "lifespan loads the model before requests are served"
    return model


# One onnxruntime call per event-loop turn for all the requests ready in it.
run_model = TurnBatcher(lambda rows: _model().predict_proba(rows))


async def predict(request: Request) -> Response:
    """Predict the class of each instance."""
    served = _model()
    with stage("decode"):
        rows = decode_rows(await request.body(), served.metadata, settings.max_instances)
    probabilities = await run_model(rows)
    return json_response(prediction_body(served.metadata, probabilities))


add_hot_route(
    app, "/predict", predict, request_model=PredictRequest, response_model=PredictResponse
)


@app.get("/model", response_model=ModelMetadata)
async def model_metadata() -> Response:
    """The served model's metadata: name, version, tensors, labels, metrics, sha256."""
    return json_response(_model().metadata.model_dump())
