"""prediction-cache api: answers from Redis when it can, from the predictor when it must.

``POST /predict`` decodes the rows to float32 (the shared contract), makes the
cache key from the model's name, version and file hash and the rows' bytes
(:func:`shared.stores.cache.prediction_key`), and asks the read-through cache
(:class:`shared.stores.cache.ReadThroughCache`): a hit answers with the stored JSON at
once; a miss calls the predictor (Open Inference Protocol over gRPC) once,
however many requests wait for the same key, and stores the answer with a TTL.
``X-Cache`` says how each answer was obtained: ``hit``, ``miss``,
``coalesced`` (waited for another request's call) or ``bypass`` (Redis down
or slow: straight to the predictor).

Readiness checks the predictor only. Redis is not a dependency of readiness:
when it is down or slow the api bypasses it and keeps answering, slower.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import numpy as np
import orjson
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from shared.kit.app import add_hot_route, add_model_route, create_app
from shared.kit.metrics import stage
from shared.kit.schemas import PredictRequest, PredictResponse, decode_rows, prediction_body
from shared.kit.settings import ServiceSettings
from shared.stores.cache import CacheSettings, ReadThroughCache, prediction_key
from shared.v2.peers import ModelPeer, PredictorPeerSettings, connected


class Settings(ServiceSettings, PredictorPeerSettings, CacheSettings):
    """The api's settings: its own, the model's, the cache's, and where the predictor is."""


settings = Settings()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """One channel to the predictor and one Redis connection pool for the process."""
    app.state.model = predictor = ModelPeer.predictor(settings)
    app.state.readiness.add("predictor", predictor.check_ready)
    async with connected([predictor], settings.predictor_timeout_s, settings):
        app.state.cache = ReadThroughCache.from_settings(settings, name="predictions")
        yield
        await app.state.cache.close()


app = create_app(
    settings,
    title="prediction-cache",
    description=(
        "REST api that answers repeated inputs from Redis and the rest from an Open Inference "
        "Protocol predictor over gRPC. X-Cache: hit, miss, coalesced or bypass."
    ),
    lifespan=lifespan,
)


async def call_predictor(predictor: ModelPeer, rows: np.ndarray) -> bytes:
    """The JSON answer for ``rows``, from the predictor (what the cache stores)."""
    with stage("predictor_call"):
        outputs = await predictor.infer(rows, ["probabilities"])
    return orjson.dumps(prediction_body(predictor.metadata, outputs["probabilities"]))


async def predict(request: Request) -> Response:
    """Predict the class of each instance: from the cache, or from the predictor once."""
    state = request.app.state
    metadata = state.model.metadata
    with stage("decode"):
        rows = decode_rows(await request.body(), metadata, settings.max_instances)
    key = prediction_key(metadata, rows)
    cached = await state.cache.get_or_compute(key, partial(call_predictor, state.model, rows))
    return Response(cached.value, headers={"X-Cache": cached.result}, media_type="application/json")


add_hot_route(
    app, "/predict", predict, request_model=PredictRequest, response_model=PredictResponse
)
add_model_route(app)
