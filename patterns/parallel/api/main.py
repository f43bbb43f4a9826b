"""parallel api: one input fanned out to several models at once, their answers soft-voted.

Each member model runs on its own predictor; the api sends every member the
same rows concurrently (:func:`fanout.fan_out`) and averages the
probabilities of those that answered. Two ways to ask:

* ``POST /predict`` (sync) waits for the members up to ``PREDICT_TIMEOUT_S``.
  A member that fails or misses it is left out, and the answer names it, as
  long as ``QUORUM`` members answered; below that it is a 503 (504 when all
  that are missing were too slow) naming the members left out. Its latency
  tracks the slowest member, not the sum of them.
* ``POST /jobs`` (async) answers 202 with a job id at once. The fan-out runs
  in the background with ``JOB_TIMEOUT_S``, each member's result stored in
  Redis as it arrives (:class:`fanout_store.FanOutStore`), and
  ``GET /jobs/{id}`` shows the vote of the members that answered so far, then
  the final one (from any replica of the api).
"""

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
from fanout import FanOutResult, MemberCall, MemberResult, fan_out
from fanout_store import FanOutStore
from fastapi import FastAPI
from pydantic import BaseModel, Field, field_validator
from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import Response

from shared.jobs.contract import JobAccepted, JobResource, accepted, resource_body
from shared.kit.app import add_hot_route, add_model_route, create_app, json_response
from shared.kit.errors import NotFound, ServiceError
from shared.kit.health import Check
from shared.kit.metrics import stage
from shared.kit.schemas import (
    ErrorResponse,
    Prediction,
    PredictRequest,
    decode_rows,
    prediction_body,
)
from shared.kit.settings import ServiceSettings
from shared.model.metadata import ModelError
from shared.stores.redis_client import RedisSettings, connect_async
from shared.v2.peers import (
    ModelPeer,
    PeerCallSettings,
    check_same_inputs,
    composite_metadata,
    composite_version,
    connected,
)

log = logging.getLogger("parallel")


def parse_members(value: str) -> dict[str, str]:
    """``model=host:port,...`` as ``{model: host:port}``."""
    members = {}
    for entry in value.split(","):
        model, sep, url = (part.strip() for part in entry.partition("="))
        if not (model and sep and url):
            raise ValueError(f"{entry.strip()!r} is not model=host:port")
        members[model] = url
    return members


class Settings(ServiceSettings, RedisSettings, PeerCallSettings):
    """The api's settings: the members and their predictors, the deadlines, the quorum, Redis."""

    model_dir: Path = Field(Path("/models"), description="Model repository (metadata only).")
    max_instances: int = Field(1000, ge=1, description="Rows one request may carry.")
    ensemble_name: str = Field("iris-ensemble", description="model_name in the answers.")
    predictor_urls: str = Field(
        description="The members: model=host:port of its predictor (gRPC), comma-separated."
    )
    quorum: int = Field(2, ge=1, description="Members that must answer for an answer.")
    predict_timeout_s: float = Field(0.5, gt=0, description="POST /predict waits this long.")
    job_timeout_s: float = Field(5.0, gt=0, description="A job's members get this long.")
    job_ttl_s: int = Field(3600, ge=1, description="How long a job's results are kept.")

    @field_validator("predictor_urls")
    @classmethod
    def _members_parse(cls, value: str) -> str:
        parse_members(value)
        return value


settings = Settings()


def ensemble_members() -> list[ModelPeer]:
    """The members' peers, once checked: same inputs, same classes, enough for a quorum."""
    members = [
        ModelPeer.from_repository(model, url, settings.model_dir, model)
        for model, url in parse_members(settings.predictor_urls).items()
    ]
    check_same_inputs(members)
    for member in members[1:]:
        if member.labels != members[0].labels:
            raise ModelError(f"member {member.role} has classes {member.labels}")
    if settings.quorum > len(members):
        raise ValueError(f"QUORUM={settings.quorum} but there are only {len(members)} members")
    return members


def quorum_ready(members: list[ModelPeer]) -> Check:
    """Readiness: at least a quorum of members' predictors serve their models."""

    async def check() -> str | None:
        reasons = await asyncio.gather(*(member.check_ready() for member in members))
        missing = [reason for reason in reasons if reason]
        if len(members) - len(missing) < settings.quorum:
            return f"fewer than {settings.quorum} members ready: " + "; ".join(missing)
        return None

    return check


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """A channel per member and a Redis client; jobs in flight get the grace period to finish."""
    state = app.state
    state.members = ensemble_members()
    state.running_jobs = set()
    redis = connect_async(settings, client_name="parallel-api")
    state.store = FanOutStore(
        redis,
        prefix="mlsp:parallel",
        ttl_s=settings.job_ttl_s,
        retry_after_s=settings.redis_retry_after_s,
    )
    state.readiness.add("members", quorum_ready(state.members))
    state.readiness.add("redis", state.store.ping)
    async with connected(state.members, settings.predict_timeout_s, settings):
        yield
        if state.running_jobs:
            _, late = await asyncio.wait(state.running_jobs, timeout=settings.graceful_shutdown_s)
            for task in late:
                task.cancel()
    await redis.aclose()


app = create_app(
    settings,
    title="parallel",
    description="One input fanned out to several models at once; answers soft-voted.",
    lifespan=lifespan,
)


def member_calls(members: list[ModelPeer], rows: np.ndarray) -> dict[str, MemberCall[np.ndarray]]:
    """Each member's call on ``rows``: its class probabilities."""

    def call(member: ModelPeer) -> MemberCall[np.ndarray]:
        async def probabilities(left_s: float) -> np.ndarray:
            return (await member.infer(rows, ["probabilities"], left_s))["probabilities"]

        return probabilities

    return {member.role: call(member) for member in members}


def vote_body(members: list[ModelPeer], results: list[MemberResult[Any]]) -> dict[str, Any]:
    """The soft vote of the members that answered, and who answered or was left out."""
    answered = [r for r in results if r.ok]
    body: dict[str, Any] = {"predictions": []}
    if answered:
        votes = np.mean([np.asarray(r.value, dtype=np.float32) for r in answered], axis=0)
        body = prediction_body(members[0].metadata, votes)
    body["model_name"] = settings.ensemble_name
    body["model_version"] = composite_version(members)
    body["members"] = {
        "answered": [{"member": r.member, "ms": r.ms} for r in answered],
        "left_out": [r.left_out_body() for r in results if not r.ok],
    }
    return body


async def decode(request: Request) -> np.ndarray:
    """The request's rows, checked against the members' input."""
    with stage("decode"):
        metadata = request.app.state.members[0].metadata
        return decode_rows(await request.body(), metadata, settings.max_instances)


async def predict(request: Request) -> Response:
    """Soft vote of the members that answer within ``PREDICT_TIMEOUT_S`` (sync)."""
    rows, members = await decode(request), request.app.state.members
    with stage("fan_out"):
        result = await fan_out(member_calls(members, rows), settings.predict_timeout_s)
    result.require_quorum(settings.quorum)
    return json_response(vote_body(members, result.results))


async def submit_job(request: Request) -> Response:
    """Start the fan-out in the background; 202 with the job's id and where to poll."""
    rows, state = await decode(request), request.app.state
    job_id = await state.store.create([m.role for m in state.members], settings.job_timeout_s)
    task = asyncio.create_task(run_job(state, job_id, rows), name=f"job {job_id}")
    state.running_jobs.add(task)
    task.add_done_callback(state.running_jobs.discard)
    return accepted(job_id)


async def run_job(state: State, job_id: str, rows: np.ndarray) -> None:
    """The fan-out of one job, each member's result stored as it arrives."""

    async def record(result: MemberResult[np.ndarray]) -> None:
        await state.store.record(job_id, result)

    calls = member_calls(state.members, rows)
    try:
        await fan_out(calls, settings.job_timeout_s, on_result=record)
        await state.store.finish(job_id)
    except ServiceError as exc:  # Redis gone: the job's deadline will report what is missing
        log.warning("job %s stopped: %s", job_id, exc.message)


async def job_status(request: Request) -> Response:
    """The job resource (:mod:`shared.jobs`): ``started`` with the vote so far as its result,
    then ``finished``, or ``failed`` below quorum (the vote of those that answered kept)."""
    job_id, state = request.path_params["job_id"], request.app.state
    job = await state.store.read(job_id)
    if job is None:
        raise NotFound(f"no job {job_id} (unknown, or older than {settings.job_ttl_s} s)")
    now = time.time()
    results = job.results_now(now)
    status, error = "started", None
    if job.final(now):
        status = "finished"
        try:
            FanOutResult(results, job.deadline_s).require_quorum(settings.quorum)
        except ServiceError as exc:
            status, error = "failed", {"code": exc.code, "message": exc.message}
    vote = vote_body(state.members, results)
    done = {r.member for r in results}
    vote["members"]["pending"] = [m.role for m in state.members if m.role not in done]
    body = resource_body(
        job_id,
        status,
        result=vote,
        error=error,
        enqueued_at=job.created_at,
        ended_at=job.ended_at,
    )
    return json_response(body)


class MemberTime(BaseModel):
    """A member that answered, and how long it took."""

    member: str
    ms: float


class LeftOut(BaseModel):
    """A member that is not in the vote, and why."""

    member: str
    code: str
    message: str


class Members(BaseModel):
    """Who is in the vote and who is not."""

    answered: list[MemberTime]
    left_out: list[LeftOut]
    pending: list[str] = Field(default_factory=list, description="Jobs only: still running.")


class VoteResponse(BaseModel):
    """The soft vote, in the order of the instances, and who took part."""

    predictions: list[Prediction]
    model_name: str
    model_version: str
    members: Members


class JobState(JobResource):
    """A job (:mod:`shared.jobs`) whose result is the vote so far, then the final one."""

    result: VoteResponse | None = None


add_hot_route(app, "/predict", predict, request_model=PredictRequest, response_model=VoteResponse)
add_hot_route(
    app,
    "/jobs",
    submit_job,
    request_model=PredictRequest,
    response_model=JobAccepted,
    status_code=202,
)
app.add_api_route(
    "/jobs/{job_id}",
    job_status,
    methods=["GET"],
    response_model=JobState,
    responses={404: {"model": ErrorResponse, "description": "No such job, or expired."}},
)


async def describe_ensemble() -> dict[str, Any]:
    """The ensemble: name, version, quorum, deadlines and each member's model metadata."""
    return composite_metadata(
        settings.ensemble_name,
        app.state.members,
        quorum=settings.quorum,
        predict_timeout_s=settings.predict_timeout_s,
        job_timeout_s=settings.job_timeout_s,
    )


add_model_route(app, describe_ensemble, response_model=None)
