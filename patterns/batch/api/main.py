"""batch api: add rows for the next run, start a run now, watch progress, read a row's answer.

The predictions themselves are made offline by the batch workers; this api
only reads and writes the tables and queues runs.

* ``POST /rows`` ``{"instances": [...]}`` (the shared contract, checked against
  the model's metadata: bad input is a 422 and nothing is stored) adds pending
  rows; ``202`` with their ids.
* ``GET /rows/{id}``: a row, its status and, once done, its prediction.
* ``POST /runs``: start a run now (``202``, poll ``/runs/{id}``, ``?wait_s=N`` to wait
  up to N seconds for it to end); the scheduler
  starts one every ``BATCH_INTERVAL_S`` anyway.
* ``GET /progress``: pending, done and failed rows, and the latest runs.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, Request
from psycopg.rows import dict_row
from pydantic import BaseModel
from starlette.responses import Response

from shared.jobs.async_queue import JobQueue
from shared.jobs.contract import JobAccepted, QueueSettings, accepted, add_job_route, timestamp
from shared.jobs.input_contract import InputContract
from shared.kit.app import add_hot_route, add_model_route, create_app, json_response
from shared.kit.errors import NotFound
from shared.kit.metrics import stage
from shared.kit.schemas import PredictRequest
from shared.kit.settings import ModelSettings, ServiceSettings
from shared.stores.postgres import AsyncDatabase, PostgresSettings, postgres_errors
from shared.stores.redis_client import RedisSettings, connect_async, redis_check, redis_errors

#: The job that starts a run, by its import path in the job image (patterns/batch/job).
START_RUN_JOB = "jobs.start_run"

PROGRESS = """
SELECT count(*) FILTER (WHERE status = 'pending') AS pending,
       count(*) FILTER (WHERE status = 'done') AS done,
       count(*) FILTER (WHERE status = 'failed') AS failed
FROM batch_inputs
"""
RECENT_RUNS = """
SELECT id AS run_id, trigger, mode, pending_at_start, drains, drains_done, rows_done,
       rows_failed, started_at, finished_at,
       extract(epoch FROM finished_at - started_at)::float8 AS seconds
FROM batch_runs ORDER BY started_at DESC LIMIT 5
"""
ROW = """
SELECT i.id, i.features, i.status, i.error, i.created_at, i.processed_at,
       p.label, p.probabilities, p.model_name, p.model_version, p.run_id, p.predicted_at
FROM batch_inputs AS i
LEFT JOIN batch_predictions AS p
  ON p.input_id = i.id AND p.model_name = %s AND p.model_version = %s
WHERE i.id = %s
"""
# One statement, so a request's rows are stored all or none; ids follow the instances' order.
INSERT_ROWS = """
INSERT INTO batch_inputs (features)
SELECT ARRAY(SELECT jsonb_array_elements_text(r.value)::real)
FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS r (value, n)
ORDER BY r.n
RETURNING id
"""


class Settings(ServiceSettings, ModelSettings, RedisSettings, QueueSettings, PostgresSettings):
    """The batch api's settings: HTTP server, model contract, Redis, queue, PostgreSQL."""


class RowsAccepted(BaseModel):
    """The ids of the rows added, in the order of the instances."""

    ids: list[int]
    status: str = "pending"


settings = Settings()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Read the model's input contract and open the pool before taking traffic; close at the end."""
    state = app.state
    state.model = InputContract(settings)
    state.model.load()
    state.redis = connect_async(settings, client_name="batch-api")
    state.jobs = JobQueue(  # the runs
        state.redis, settings.queue_name, max_job_waiters=settings.max_job_waiters
    )
    state.database = AsyncDatabase(settings, "batch-api")
    for name, check in (
        ("model", state.model.check_ready),
        ("redis", redis_check(state.redis)),
        ("postgres", state.database.check()),
    ):
        state.readiness.add(name, check)
    await state.database.open()
    yield
    await state.database.close()
    await state.jobs.aclose()
    await state.redis.aclose()


app = create_app(
    settings,
    title="batch",
    description="Rows wait in PostgreSQL; scheduled runs predict them; watch and read here.",
    lifespan=lifespan,
)
add_model_route(app)


async def add_rows(request: Request) -> Response:
    """Add the instances as pending rows; they are predicted by the next run."""
    state = request.app.state
    rows = state.model.decode(await request.body())
    with stage("insert"), postgres_errors("storing the rows"):
        async with state.database.connection() as connection:
            cursor = await connection.execute(INSERT_ROWS, (orjson.dumps(rows.tolist()).decode(),))
            ids = sorted(row_id for (row_id,) in await cursor.fetchall())
    return json_response({"ids": ids, "status": "pending"}, 202)


add_hot_route(app, "/rows", add_rows, request_model=PredictRequest, response_model=RowsAccepted)


@app.get("/rows/{row_id}")
async def get_row(row_id: int, request: Request) -> Response:
    """A row: its features, status, error if it failed, prediction once done."""
    state = request.app.state
    served = (state.model.name, state.model.version, row_id)
    row = await _fetch(state.database, ROW, served, "reading the row")
    if not row:
        raise NotFound(f"no row {row_id}", field="row_id")
    (found,) = row
    prediction = None
    if found["label"] is not None:
        prediction = {
            key: found[key]
            for key in ("label", "probabilities", "model_name", "model_version", "run_id")
        }
        prediction["predicted_at"] = timestamp(found["predicted_at"])
    return json_response(
        {
            **{key: found[key] for key in ("id", "features", "status", "error")},
            "created_at": timestamp(found["created_at"]),
            "processed_at": timestamp(found["processed_at"]),
            "prediction": prediction,
        }
    )


@app.get("/progress")
async def progress(request: Request) -> Response:
    """How many rows are pending, done and failed, and the latest runs."""
    database = request.app.state.database
    (counts,) = await _fetch(database, PROGRESS, (), "reading the progress")
    runs = await _fetch(database, RECENT_RUNS, (), "reading the runs")
    return json_response(
        {**counts, "total": sum(counts.values()), "runs": [_run(run) for run in runs]}
    )


async def _fetch(
    database: AsyncDatabase, query: str, params: tuple[Any, ...], action: str
) -> list[dict[str, Any]]:
    with postgres_errors(action):
        async with (
            database.connection() as connection,
            connection.cursor(row_factory=dict_row) as cursor,
        ):
            await cursor.execute(query, params)
            return await cursor.fetchall()


def _run(run: dict[str, Any]) -> dict[str, Any]:
    seconds = run.pop("seconds")
    rows = run["rows_done"] + run["rows_failed"]
    return {
        **run,
        "started_at": timestamp(run["started_at"]),
        "finished_at": timestamp(run["finished_at"]),
        "rows_per_s": round(rows / seconds, 1) if seconds else None,
    }


async def start_run(request: Request) -> Response:
    """Start a run now; poll ``/runs/{id}`` (its result names the drains it started)."""
    with redis_errors("queueing the run", settings.redis_retry_after_s):
        job = await request.app.state.jobs.enqueue_call(
            START_RUN_JOB,
            kwargs={"trigger": "api"},
            timeout=60,
            result_ttl=settings.result_ttl_s,
            failure_ttl=settings.result_ttl_s,
            description="predict run (api)",
        )
    return accepted(job.id, "/runs")


add_hot_route(app, "/runs", start_run, request_model=None, response_model=JobAccepted)
add_job_route(app, path_prefix="/runs", max_wait_s=settings.job_max_wait_s)
