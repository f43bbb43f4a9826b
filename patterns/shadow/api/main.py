"""shadow api: answers from the primary model, mirrors each request to a candidate model.

The public contract is sync's: the api decodes the rows, calls the primary's predictor
over gRPC and answers with its labels. Once it has the answer, it hands the same rows
to the candidate's predictor in the background (:class:`mirror.Mirror`) and
returns without waiting: the candidate's answer, its latency and whether it agrees with
the primary are recorded as metrics (``comparison.py``), never sent to the client.
The rows mirrored within ``SHADOW_WINDOW_MS`` go to the candidate in one call
(:class:`mirror.RowWindow`): a call per window, not per request, keeps the primary's
latency close to what it is with mirroring off. The mirror is bounded
(``SHADOW_MAX_IN_FLIGHT``; past it a call is dropped and counted), has its own
deadline (``CANDIDATE_TIMEOUT_S``) and counts its errors, so a slow or stopped
candidate costs the primary's answers nothing. Readiness is the primary's alone.
"""

import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from comparison import PRIMARY_LATENCY, Comparison
from fastapi import FastAPI
from mirror import Mirror, RowWindow
from pydantic import Field, field_validator
from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import Response

from shared.kit.app import add_hot_route, add_model_route, create_app, json_response
from shared.kit.metrics import stage
from shared.kit.schemas import PredictRequest, PredictResponse, decode_rows, prediction_body
from shared.kit.settings import ServiceSettings
from shared.v2.peers import PredictorPeerSettings, connected, primary_and_second


class Settings(ServiceSettings, PredictorPeerSettings):
    """The api's settings: the primary (as in sync), the candidate and how much to mirror."""

    candidate_url: str = Field(
        description="host:port of the candidate's predictor (gRPC); http://host:port for REST."
    )
    candidate_model: str = Field("iris-boosted", description="The candidate model's name.")
    candidate_version: str | None = Field(
        None, description="The candidate's version; empty: the highest in the repository."
    )
    candidate_timeout_s: float = Field(
        1.0, gt=0, description="Deadline of one mirrored call, from the mirror to its answer."
    )
    shadow_share: float = Field(
        1.0, ge=0, le=1, description="Share of requests mirrored to the candidate; 0: none."
    )
    shadow_max_in_flight: int = Field(
        64, ge=1, description="Mirrored calls at once; more are dropped (and counted)."
    )
    shadow_window_ms: float = Field(
        10.0,
        ge=0,
        description="Rows mirrored within this many ms go to the candidate in one call "
        "(up to PEER_MAX_BATCH_ROWS); 0: one call per request.",
    )

    @field_validator("candidate_version", mode="before")
    @classmethod
    def _empty_is_highest(cls, value: Any) -> Any:
        return value or None


settings = Settings()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """A channel to each predictor; mirrored calls in flight get a moment to end at shutdown."""
    state = app.state
    state.model, state.candidate = primary_and_second(
        settings,
        "candidate",
        settings.candidate_url,
        settings.candidate_model,
        settings.candidate_version,
        why="their answers cannot be compared",
    )
    state.comparison = Comparison(state.model.labels)
    state.mirror = Mirror("candidate", settings.shadow_max_in_flight, settings.candidate_timeout_s)
    candidate = state.candidate
    state.window = RowWindow(
        state.mirror,
        settings.shadow_window_ms / 1000,
        settings.peer_max_batch_rows,
        lambda rows: candidate.infer(rows, ["probabilities"], settings.candidate_timeout_s),
        state.comparison.answered,
    )
    # Never the candidate's readiness: it must cost nothing.
    state.readiness.add("predictor", state.model.check_ready)
    async with connected([state.model, state.candidate], settings.predictor_timeout_s, settings):
        yield
        state.window.flush()
        await state.mirror.aclose(grace_s=settings.candidate_timeout_s)


app = create_app(
    settings,
    title="shadow",
    description="Answers from the primary model; mirrors each request to a candidate model "
    "in the background and records how their answers compare.",
    lifespan=lifespan,
)


def mirror_to_candidate(state: State, rows: Any, primary_best: Any) -> None:
    """Mirror ``rows`` to the candidate (a ``SHADOW_SHARE`` of requests), without waiting."""
    if settings.shadow_share < 1 and random.random() >= settings.shadow_share:
        return
    state.window.add(rows, primary_best)


async def predict(request: Request) -> Response:
    """Predict the class of each instance with the primary model (and mirror the rows)."""
    state = request.app.state
    primary = state.model
    with stage("decode"):
        rows = decode_rows(await request.body(), primary.metadata, settings.max_instances)
    started = time.perf_counter()
    with stage("predictor_call"):
        probabilities = (await primary.infer(rows, ["probabilities"]))["probabilities"]
    PRIMARY_LATENCY.observe(time.perf_counter() - started)
    mirror_to_candidate(state, rows, probabilities.argmax(axis=1))
    return json_response(prediction_body(primary.metadata, probabilities))


add_hot_route(
    app, "/predict", predict, request_model=PredictRequest, response_model=PredictResponse
)


add_model_route(app)  # the primary's: the one that answers


@app.get("/shadow")
async def shadow_state(request: Request) -> Response:
    """The candidate, how much is mirrored, and whether the candidate answers now."""
    state = request.app.state
    candidate, mirror = state.candidate, state.mirror
    return json_response(
        {
            "primary": state.model.ref,
            "candidate": candidate.ref,
            "candidate_url": settings.candidate_url,
            "share": settings.shadow_share,
            "max_in_flight": settings.shadow_max_in_flight,
            "window_ms": settings.shadow_window_ms,
            "in_flight": mirror.in_flight,
            "candidate_problem": await candidate.check_ready(),
        }
    )
