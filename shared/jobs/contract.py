"""Jobs as clients see them: the 202 answer, the job resource, its errors.

The one job contract of every pattern that answers 202 (async's RQ jobs, batch's
runs, parallel's background fan-outs). A service that starts work in the background
answers the submit with::

    202  Location: /jobs/<id>
    {"job_id": "<id>", "status": "queued", "url": "/jobs/<id>"}

and ``GET /jobs/<id>`` (``?wait_s=N``: wait up to N seconds for the job to end first,
see :mod:`shared.jobs.job_ends`) with::

    {"job_id", "status": "queued" | "started" | "finished" | "failed",
     "result": <the job's return value> | null,
     "error": {"code", "message"} | null, "enqueued_at", "ended_at"}

Why these four: they are RQ's own names for a job's life (queued, started, then
finished or failed), so a job on an RQ queue reads the same in the api, in RQ's
job hash and in stock rq tools (``rq info``, rq-dashboard), with nothing to
translate; and each ended state says whether it worked (a ``done`` would not).
RQ's finer states map onto those four (a job waiting for a retry is ``queued``
again). A job that is not on a queue (parallel's fan-out starts at once) answers
the submit ``queued`` like any other and is ``started`` until it ends; it may show
a partial ``result`` while ``started``.

A failed job's error is one line a client can read, never a traceback. RQ's jobs
say ``worker_lost`` when the worker running it died and no retry was left,
``timeout`` when it ran past its time limit, ``job_error`` otherwise; a
service's own jobs use the codes of its errors (:mod:`shared.kit.errors`).

A submit finding the queue at its bound (``MAX_QUEUED_JOBS``) is answered
``503`` + ``Retry-After`` with code ``queue_full`` (:class:`shared.jobs.async_queue.JobQueue`).
"""

import contextlib
import math
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import redis
from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.results import Result
from starlette.requests import Request
from starlette.responses import Response

from shared.jobs.job_ends import wait_for_end
from shared.kit.app import add_hot_route, json_response
from shared.kit.errors import InvalidInput, NotFound, ServiceError
from shared.kit.metrics import stage
from shared.kit.settings import _EnvSettings
from shared.stores.redis_client import redis_errors

if TYPE_CHECKING:
    from shared.jobs.async_queue import JobQueue

PublicStatus = Literal["queued", "started", "finished", "failed"]
#: The statuses after which a job changes no more.
ENDED: tuple[PublicStatus, ...] = ("finished", "failed")

_PUBLIC_STATUS: dict[JobStatus, PublicStatus] = {
    JobStatus.CREATED: "queued",
    JobStatus.QUEUED: "queued",
    JobStatus.DEFERRED: "queued",
    JobStatus.SCHEDULED: "queued",
    JobStatus.RATE_LIMITED: "queued",
    JobStatus.READY_TO_ENQUEUE: "queued",
    JobStatus.STARTED: "started",
    JobStatus.FINISHED: "finished",
    JobStatus.FAILED: "failed",
    JobStatus.STOPPED: "failed",
    JobStatus.CANCELED: "failed",
}
# RQ makes uuid4 hex ids; anything else can never name a job (and must not reach a Redis key).
JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class QueueSettings(_EnvSettings):
    """Which queue jobs go to, and how long they and their results may live."""

    queue_name: str = Field("predict", description="The RQ queue of this pattern.")
    job_timeout_s: int = Field(30, ge=1, description="A job running longer is stopped and fails.")
    job_retries: int = Field(
        2, ge=0, description="Extra attempts when a job fails or its worker dies."
    )
    result_ttl_s: int = Field(
        600, ge=1, description="Finished and failed jobs are forgotten this long after they end."
    )
    max_queued_jobs: int = Field(
        10_000,
        ge=0,
        description="A submit finding this many jobs waiting is answered 503 + Retry-After "
        "(the queue never grows silently); 0: no bound.",
    )
    queue_full_retry_after_s: int = Field(
        2, ge=1, description="The Retry-After of a submit refused because the queue is full."
    )
    queue_depth_interval_s: float = Field(
        5.0, gt=0, description="How often an api reads the queue's depth into mlsp_queue_depth."
    )
    job_max_wait_s: float = Field(
        5.0,
        gt=0,
        description="The most a GET /jobs/{id}?wait_s= may wait for the job to end. Half of "
        "GRACEFUL_SHUTDOWN_S (10), so a request waiting when the api is stopped is answered "
        "before the shutdown's deadline; far below the idle timeouts of common proxies (60 s).",
    )
    max_job_waiters: int = Field(
        1000,
        ge=0,
        description="Most requests of one api process waiting for a job to end; past it a "
        "GET /jobs/{id}?wait_s= answers at once (0: none wait).",
    )


class QueueFull(ServiceError):
    """The queue holds as many waiting jobs as it may (503 with Retry-After)."""

    status = 503
    code = "queue_full"

    def __init__(self, waiting: int, retry_after_s: int) -> None:
        super().__init__(
            f"the queue is full ({waiting} jobs waiting); retry after {retry_after_s} s",
            headers={"Retry-After": str(retry_after_s)},
        )


class JobError(BaseModel):
    """Why a job failed."""

    code: str = Field(
        description="worker_lost, timeout or job_error for a queued job; otherwise the code "
        "of the service's error (e.g. dependency_unavailable)."
    )
    message: str


class JobAccepted(BaseModel):
    """The answer to a submit: where to poll."""

    job_id: str
    status: PublicStatus = "queued"
    url: str = Field(description="Poll this (also in the Location header).")


class JobResource(BaseModel):
    """A job as ``GET /jobs/{id}`` shows it."""

    job_id: str
    status: PublicStatus
    result: Any | None = Field(
        None,
        description="The job's answer once finished (a partial one while started, where the "
        "service has one).",
    )
    error: JobError | None = Field(None, description="Why it failed, once failed.")
    enqueued_at: str | None = None
    ended_at: str | None = None


def public_status(status: JobStatus | None) -> PublicStatus:
    """The status a client sees for RQ's ``status``."""
    return _PUBLIC_STATUS.get(status, "queued") if status is not None else "queued"


def accepted(job_id: str, path_prefix: str = "/jobs") -> Response:
    """``202 Accepted`` with the job's URL in the body and the ``Location`` header."""
    url = f"{path_prefix}/{job_id}"
    return json_response(
        {"job_id": job_id, "status": "queued", "url": url}, 202, headers={"Location": url}
    )


def fetch_job(connection: redis.Redis, job_id: str) -> Job:
    """The job called ``job_id``, or :class:`NotFound` (unknown, expired or malformed id)."""
    if not JOB_ID.match(job_id):
        raise NotFound(f"no job {job_id!r}", field="job_id")
    with redis_errors("reading the job"):
        try:
            return Job.fetch(job_id, connection=connection)
        except NoSuchJobError:
            raise NotFound(
                f"no job {job_id!r}: never submitted, or its result expired", field="job_id"
            ) from None


def timestamp(moment: datetime | float | None) -> str | None:
    """An RQ timestamp (UTC) or seconds since the epoch as ISO 8601 with a ``Z``."""
    if moment is None:
        return None
    if isinstance(moment, float | int):
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def resource_body(
    job_id: str,
    status: PublicStatus,
    *,
    result: Any = None,
    error: dict[str, str] | None = None,
    enqueued_at: datetime | float | None = None,
    ended_at: datetime | float | None = None,
) -> dict[str, Any]:
    """The job resource (:class:`JobResource`, see the module docstring)."""
    return {
        "job_id": job_id,
        "status": status,
        "result": result,
        "error": error,
        "enqueued_at": timestamp(enqueued_at),
        "ended_at": timestamp(ended_at) if status in ENDED else None,
    }


def job_body(
    job: Job,
    status: PublicStatus,
    *,
    result: Any = None,
    error: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The job resource for the RQ ``job`` in ``status``."""
    return resource_body(
        job.id,
        status,
        result=result,
        error=error,
        enqueued_at=job.enqueued_at,
        ended_at=job.ended_at,
    )


def job_view(job: Job) -> dict[str, Any]:
    """The job resource of a fetched job, with its result or error once it has ended."""
    with redis_errors("reading the job"):
        ended = public_status(job.get_status(refresh=False)) in ENDED
        return job_view_with(job, job.latest_result() if ended else None)


def job_view_with(job: Job, latest: Result | None) -> dict[str, Any]:
    """The job resource of ``job`` whose latest result (None: none yet) is ``latest``."""
    status = public_status(job.get_status(refresh=False))
    if status == "finished":
        result = latest.return_value if latest is not None else None
        return job_body(job, status, result=result)
    if status == "failed":
        if latest is None or latest.type == Result.Type.STOPPED:
            error = {"code": "job_error", "message": "the job was stopped"}
        elif latest.type == Result.Type.MAX_RETRIES_EXCEEDED:
            error = {"code": "job_error", "message": "gave up after the last retry"}
        else:
            error = error_from_traceback(latest.exc_string or "")
        return job_body(job, status, error=error)
    return job_body(job, status)


def error_from_traceback(exc_string: str) -> dict[str, str]:
    """A one-line error for what RQ recorded about a failed job (a traceback or a note)."""
    if "AbandonedJobError" in exc_string or "Work-horse terminated" in exc_string:
        return error_from_exception("AbandonedJobError", "")
    if "intermediate queue" in exc_string:
        return error_from_exception("AbandonedJobError", "")
    lines = [line for line in exc_string.strip().splitlines() if line.strip()]
    last = lines[-1].strip() if lines else "the job failed"
    name, _, message = last.partition(": ")
    return error_from_exception(name.rsplit(".", 1)[-1], message or last)


def error_from_exception(name: str, message: str) -> dict[str, str]:
    """A one-line error for an exception of type ``name`` with ``message``."""
    if name == "AbandonedJobError":
        return {
            "code": "worker_lost",
            "message": "the worker running the job stopped before finishing it, "
            "and no retry was left",
        }
    if name == "JobTimeoutException":
        return {"code": "timeout", "message": message or "the job ran past its time limit"}
    return {"code": "job_error", "message": f"{name}: {message}" if message else name}


def wait_seconds(raw: str | None, most: float) -> float:
    """The ``wait_s`` query parameter in seconds (absent: 0), or a 422 naming it."""
    if raw is None:
        return 0.0
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds):
        raise InvalidInput(f"wait_s must be a number of seconds, not {raw!r}", field="wait_s")
    if not 0 <= seconds <= most:
        raise InvalidInput(f"wait_s must be between 0 and {most:g} seconds", field="wait_s")
    return seconds


def add_job_route(
    app: FastAPI,
    jobs: "JobQueue | None" = None,
    path_prefix: str = "/jobs",
    *,
    max_wait_s: float = 5.0,
) -> None:
    """``GET <path_prefix>/{job_id}[?wait_s=N]`` on ``app``: the job resource, 404 for an
    unknown id.

    The job is read with ``jobs`` (:class:`shared.jobs.async_queue.JobQueue`; None: the app's
    ``app.state.jobs``, made in its lifespan): one round trip on the asyncio client, so a
    poll never holds up the event loop. With ``wait_s`` (at most ``max_wait_s``,
    ``JOB_MAX_WAIT_S``) a job that has not ended is waited for up to that long
    (:func:`shared.jobs.job_ends.wait_for_end`); the answer is 200 either way, its status
    says whether the job ended.
    """

    async def get_job(request: Request) -> Response:
        """A job's status, and its result or error once it has ended."""
        queue = jobs or request.app.state.jobs
        job_id = request.path_params["job_id"]
        wait_s = wait_seconds(request.query_params.get("wait_s"), max_wait_s)

        async def read() -> dict[str, Any]:
            with stage("job_lookup"), redis_errors("reading the job"):
                return job_view_with(*await queue.fetch(job_id))

        if not wait_s:
            return json_response(await read())
        in_flight = getattr(request.app, "in_flight", None)
        view = await wait_for_end(
            queue.ends,
            job_id,
            read,
            wait_s=wait_s,
            receive=request.receive,
            parked=in_flight.parked if in_flight is not None else contextlib.nullcontext,
        )
        return json_response(view)

    path = f"{path_prefix}/{{job_id}}"
    add_hot_route(
        app, path, get_job, request_model=None, response_model=JobResource, methods=("GET",)
    )
    # The hot route reads the id from the request; tell the docs about the path parameter.
    for route in app.routes:
        if isinstance(route, APIRoute) and route.path == path:
            route.openapi_extra = {
                "parameters": [
                    {
                        "name": "job_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "wait_s",
                        "in": "query",
                        "required": False,
                        "description": "Wait up to this many seconds for the job to end "
                        "(0, the default: answer at once).",
                        "schema": {"type": "number", "minimum": 0, "maximum": max_wait_s},
                    },
                ]
            }
