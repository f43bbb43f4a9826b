"""canary api: splits the traffic by weight between a primary and a canary model.

The public contract is sync's. Each request is given a variant (:mod:`split`): by a hash
of its ``X-Client-Id`` header, so one client always sees the same variant while the
weights stand, or at random by weight without one. The variant's predictor (gRPC, its
own scalable tier) answers; ``model_version`` and the ``X-Variant`` header say which.
When the canary's call fails (down: UNAVAILABLE, or past ``CANARY_TIMEOUT_S``) the
primary answers the request within what is left of its deadline
(``PREDICTOR_TIMEOUT_S``), and the fallback is counted: a stopped canary fails nothing.

The weights live in Redis (:class:`split.WeightStore`), re-read every
``WEIGHTS_REFRESH_S``; the last ones read stay in force while Redis is down. They are
changed with ``PUT /canary/weights``, served only to clients on the container's own
loopback (``python -m admin`` run in the container: ``make canary-promote``).
Readiness is the primary's alone.
"""

import asyncio
import ipaddress
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import numpy as np
from fastapi import FastAPI, HTTPException
from pydantic import Field
from split import Weights, WeightStore, variant_for
from starlette.requests import Request
from starlette.responses import Response
from variants import ASSIGNED, ERRORS, FALLBACKS, record_answer

from shared.kit.app import add_hot_route, add_model_route, create_app, json_response
from shared.kit.errors import DependencyTimeout, DependencyUnavailable, ServiceError
from shared.kit.metrics import stage
from shared.kit.schemas import PredictRequest, PredictResponse, decode_rows, prediction_body
from shared.kit.settings import ServiceSettings
from shared.stores.redis_client import RedisSettings, connect_async, redis_errors
from shared.v2.peers import ModelPeer, PredictorPeerSettings, connected, primary_and_second


class Settings(ServiceSettings, PredictorPeerSettings, RedisSettings):
    """The api's settings: the primary (as in sync), the canary, the split and Redis."""

    canary_url: str = Field(
        description="host:port of the canary's predictor (gRPC); http://host:port for REST."
    )
    canary_model: str = Field("iris", description="The canary model's name.")
    canary_version: str = Field("2", description="The canary model's version.")
    canary_timeout_s: float = Field(
        0.5, gt=0, description="Deadline of a canary call; the primary gets what is left."
    )
    canary_weight: int = Field(
        10, ge=0, le=100, description="Percent to the canary until Redis holds weights."
    )
    client_key_header: str = Field(
        "X-Client-Id", description="The header whose hash makes the split sticky."
    )
    weights_refresh_s: float = Field(1.0, gt=0, description="How often weights are re-read.")


settings = Settings()
if settings.canary_timeout_s >= settings.predictor_timeout_s:
    raise ValueError(
        f"canary_timeout_s ({settings.canary_timeout_s}) must be below predictor_timeout_s "
        f"({settings.predictor_timeout_s}): a fallback to the primary needs time left"
    )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """A channel to each predictor, and the weights kept fresh in the background."""
    state = app.state
    primary, canary = primary_and_second(
        settings,
        "canary",
        settings.canary_url,
        settings.canary_model,
        settings.canary_version,
        why="clients would get other answers",
    )
    state.model, state.peers = primary, {"primary": primary, "canary": canary}
    state.weights = WeightStore(
        connect_async(settings, client_name="canary-api"),
        Weights.canary_share(settings.canary_weight),
        settings.weights_refresh_s,
    )
    state.readiness.add("predictor", primary.check_ready)  # the canary's loss falls back to it
    async with connected([primary, canary], settings.predictor_timeout_s, settings):
        refresher = asyncio.create_task(state.weights.keep_fresh())
        yield
        refresher.cancel()
        with suppress(asyncio.CancelledError):
            await refresher
        await state.weights.client.aclose()


app = create_app(
    settings,
    title="canary",
    description="Splits requests by weight between a primary and a canary model, sticky by "
    "client (X-Client-Id); X-Variant says which answered. A failed canary call falls back "
    "to the primary.",
    lifespan=lifespan,
)


async def answer(
    peers: dict[str, ModelPeer], variant: str, rows: np.ndarray
) -> tuple[str, np.ndarray]:
    """The variant that answered ``rows`` and its probabilities: ``variant``'s, or the
    primary's when the canary's call fails."""
    primary, canary = peers["primary"], peers["canary"]
    labels = primary.labels
    started = time.perf_counter()
    if variant == "canary":
        try:
            with stage("canary_call"):
                outputs = await canary.infer(rows, ["probabilities"], settings.canary_timeout_s)
            probabilities = outputs["probabilities"]
            record_answer("canary", labels, probabilities, time.perf_counter() - started)
            return "canary", probabilities
        except (DependencyUnavailable, DependencyTimeout) as exc:
            ERRORS.labels("canary", exc.code).inc()
            FALLBACKS.inc()
    left_s = settings.predictor_timeout_s - (time.perf_counter() - started)
    try:
        with stage("predictor_call"):
            outputs = await primary.infer(rows, ["probabilities"], left_s)
    except ServiceError as exc:
        ERRORS.labels("primary", exc.code).inc()
        raise
    probabilities = outputs["probabilities"]
    record_answer("primary", labels, probabilities, time.perf_counter() - started)
    return "primary", probabilities


async def predict(request: Request) -> Response:
    """Predict the class of each instance with the variant the split gives the client."""
    state = request.app.state
    with stage("decode"):
        rows = decode_rows(await request.body(), state.model.metadata, settings.max_instances)
    variant = variant_for(state.weights.weights, request.headers.get(settings.client_key_header))
    ASSIGNED.labels(variant).inc()
    answered, probabilities = await answer(state.peers, variant, rows)
    body = prediction_body(state.peers[answered].metadata, probabilities)
    return json_response(body, headers={"X-Variant": answered})


add_hot_route(
    app, "/predict", predict, request_model=PredictRequest, response_model=PredictResponse
)


add_model_route(app)  # the primary's: the answer clients mostly get


@app.get("/canary")
async def canary_state(request: Request) -> Response:
    """The variants, the weights in force (and where they came from), the canary's health."""
    peers, store = request.app.state.peers, request.app.state.weights
    return json_response(
        {
            "variants": {name: peer.ref for name, peer in peers.items()},
            **store.state(),
            "client_key_header": settings.client_key_header,
            "canary_problem": await peers["canary"].check_ready(),
        }
    )


def from_loopback(request: Request) -> bool:
    """True when the client is on the container's own loopback (``docker compose exec``)."""
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.put("/canary/weights", include_in_schema=False)
async def set_weights(weights: Weights, request: Request) -> Response:
    """Change the split for every api process: 422 naming the field for bad weights,
    503 when Redis cannot store them (nothing changes either way); loopback only."""
    if not from_loopback(request):
        raise HTTPException(403, "weights change only from the api's own loopback")
    weights.check_sum()
    store = request.app.state.weights
    with redis_errors("storing the weights", settings.redis_retry_after_s):
        await store.save(weights)
    return json_response(store.state())
