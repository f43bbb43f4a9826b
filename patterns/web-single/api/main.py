"""web-single: one container, the model in-process.

``POST /predict`` decodes the JSON rows, runs onnxruntime and answers, all in
the event loop: a few-microsecond inference gains nothing from a thread-pool hop.
Under concurrent load the requests of one loop turn share a model run
(:meth:`shared.serving.model.OnnxModel.infer`); one request at a time runs at once.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from starlette.responses import Response

from shared.kit.app import add_hot_route, add_model_route, create_app, json_response
from shared.kit.metrics import stage
from shared.kit.schemas import PredictRequest, PredictResponse, decode_rows, prediction_body
from shared.kit.settings import ModelSettings, ServiceSettings
from shared.serving.model import load_served_model


class Settings(ServiceSettings, ModelSettings):
    """web-single's settings: the HTTP server's and the model's."""


settings = Settings()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load and check the model before taking traffic; a bad model stops the start."""
    app.state.model = load_served_model(settings)
    yield


app = create_app(
    settings,
    title="web-single",
    description="REST, preprocessing and the ONNX model in one process.",
    lifespan=lifespan,
)


async def predict(request: Request) -> Response:
    """Predict the class of each instance."""
    model = request.app.state.model
    with stage("decode"):
        rows = decode_rows(await request.body(), model.metadata, settings.max_instances)
    outputs = await model.infer(rows, ["probabilities"])
    return json_response(prediction_body(model.metadata, outputs["probabilities"]))


add_hot_route(
    app, "/predict", predict, request_model=PredictRequest, response_model=PredictResponse
)
add_model_route(app)
