"""async api: check the request, queue it, answer 202 at once; the workers run the model.

``POST /predict`` validates the rows against the model's metadata (bad input
is a 422 now, never a failed job later), puts a job on the Redis queue (RQ)
and answers ``202`` with the job's URL; a full queue (``MAX_QUEUED_JOBS`` waiting)
answers ``503`` + ``Retry-After`` instead. Redis is only ever awaited
(:class:`shared.jobs.async_queue.JobQueue`): the submits of one event-loop turn go to
Redis in one round trip, in RQ's own job format. ``GET /jobs/{job_id}`` answers its
status and, once it has ended, its result (the body web-single's ``/predict``
answers) or its error; with ``?wait_s=N`` it first waits up to N seconds for the job
to end (a long poll, woken by the worker's announcement: :mod:`shared.jobs.job_ends`).
A body may name a ``callback_url`` that receives the same JSON when the job ends (hosts
on ``CALLBACK_ALLOWED_HOSTS`` only).
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from pydantic import Field
from rq import Callback, Retry
from starlette.responses import Response

from shared.jobs.async_queue import JobQueue
from shared.jobs.callbacks import META_KEY, CallbackSettings, check_callback_url
from shared.jobs.contract import JobAccepted, QueueSettings, accepted, add_job_route
from shared.jobs.input_contract import InputContract
from shared.kit.app import add_hot_route, add_model_route, create_app
from shared.kit.logs import request_id_var
from shared.kit.metrics import stage
from shared.kit.schemas import PredictRequest, decode_json
from shared.kit.settings import ModelSettings, ServiceSettings
from shared.stores.redis_client import RedisSettings, connect_async, redis_check, redis_errors

#: The worker's job function, by its import path in the worker image (patterns/async/worker).
PREDICT_JOB = "tasks.predict"


class Settings(ServiceSettings, ModelSettings, RedisSettings, QueueSettings, CallbackSettings):
    """The async api's settings: HTTP server, model contract, Redis, queue, callbacks."""


class SubmitRequest(PredictRequest):
    """The rows to predict, and optionally where to send the job's outcome."""

    callback_url: str | None = Field(
        None,
        description="Receives the job resource (POST, JSON) when the job ends; "
        "only hosts listed in CALLBACK_ALLOWED_HOSTS.",
        examples=["http://callback-receiver:8080/callbacks"],
    )


settings = Settings()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Read the model's input contract before taking traffic (a missing model stops the
    start) and open the queue; while serving, read its depth into ``mlsp_queue_depth``."""
    state = app.state
    state.model = InputContract(settings)
    state.model.load()
    state.redis = connect_async(settings, client_name="async-api")
    state.jobs = JobQueue(
        state.redis,
        settings.queue_name,
        max_queued_jobs=settings.max_queued_jobs,
        queue_full_retry_after_s=settings.queue_full_retry_after_s,
        max_job_waiters=settings.max_job_waiters,
    )
    state.readiness.add("model", state.model.check_ready)
    state.readiness.add("redis", redis_check(state.redis))
    publishing = asyncio.create_task(state.jobs.publish_depth(settings.queue_depth_interval_s))
    yield
    publishing.cancel()
    await state.jobs.aclose()
    await state.redis.aclose()


app = create_app(
    settings,
    title="async",
    description="Submit rows, get a job id at once (202), poll the job for the predictions.",
    lifespan=lifespan,
)
add_model_route(app)


def callback_url_of(body: bytes) -> str | None:
    """The body's ``callback_url`` once checked against the allow list, or None."""
    if b'"callback_url"' not in body:  # most bodies: no second parse
        return None
    payload = decode_json(body)
    url = payload.get(META_KEY) if isinstance(payload, dict) else None
    return None if url is None else check_callback_url(url, settings.allowed_hosts)


def job_options(callback_url: str | None) -> dict[str, Any]:
    """RQ's options for a prediction job: limits, retries, the request id, callbacks."""
    options: dict[str, Any] = {
        "timeout": settings.job_timeout_s,
        "result_ttl": settings.result_ttl_s,
        "failure_ttl": settings.result_ttl_s,
        "retry": Retry(max=settings.job_retries) if settings.job_retries else None,
        "meta": {"request_id": request_id_var.get()},
    }
    if callback_url is not None:
        options["meta"][META_KEY] = callback_url
        options["on_success"] = Callback("shared.jobs.callbacks.on_success", settings.budget_s)
        options["on_failure"] = Callback("shared.jobs.callbacks.on_failure", settings.budget_s)
    return options


async def predict(request: Request) -> Response:
    """Queue the instances for prediction; poll the answer's URL for the result."""
    body, state = await request.body(), request.app.state
    rows = state.model.decode(body)
    callback_url = callback_url_of(body)
    with stage("enqueue"), redis_errors("queueing the job", settings.redis_retry_after_s):
        job = await state.jobs.enqueue_call(
            PREDICT_JOB,
            args=(rows.tolist(),),
            description=f"predict {len(rows)} rows",
            **job_options(callback_url),
        )
    return accepted(job.id)


add_hot_route(app, "/predict", predict, request_model=SubmitRequest, response_model=JobAccepted)
add_job_route(app, max_wait_s=settings.job_max_wait_s)
