"""sync api: the public REST contract in front of a V2 predictor over gRPC.

The api decodes and checks the rows (the same contract as web-single), calls
the predictor with a deadline on one reused channel, and turns its answer
into labels and probabilities. It reads the model's metadata (labels, feature
names) from the model repository; the model itself runs only in the predictor.
Without ``MODEL_VERSION`` the api names no version: each predictor answers with
its own (``MODEL_VERSION`` there), and the answer's ``model_version`` says which,
so a rolling update of the predictors shows in the answers.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from shared.kit.app import add_hot_route, add_model_route, create_app, json_response
from shared.kit.metrics import stage
from shared.kit.schemas import PredictRequest, PredictResponse, decode_rows, prediction_body
from shared.kit.settings import ServiceSettings
from shared.v2.peers import ModelPeer, PredictorPeerSettings, connected


class Settings(ServiceSettings, PredictorPeerSettings):
    """The api's settings: its own, the model's, and where the predictor is."""


settings = Settings()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """One channel to the predictor for the life of the process. Without MODEL_VERSION the
    api follows the predictors' version (a rolling update changes it)."""
    app.state.model = predictor = ModelPeer.predictor(settings, follow=True)
    app.state.readiness.add("predictor", predictor.check_ready)
    async with connected([predictor], settings.predictor_timeout_s, settings):
        yield


app = create_app(
    settings,
    title="sync",
    description="REST api in front of an Open Inference Protocol predictor over gRPC.",
    lifespan=lifespan,
)


async def predict(request: Request) -> Response:
    """Predict the class of each instance (the predictor runs the model)."""
    predictor = request.app.state.model
    with stage("decode"):
        rows = decode_rows(await request.body(), predictor.metadata, settings.max_instances)
    with stage("predictor_call"):
        outputs, version = await predictor.infer_versioned(rows, ["probabilities"])
    return json_response(prediction_body(predictor.metadata, outputs["probabilities"], version))


add_hot_route(
    app, "/predict", predict, request_model=PredictRequest, response_model=PredictResponse
)
add_model_route(app)
