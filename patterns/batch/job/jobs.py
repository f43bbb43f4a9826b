"""The batch jobs: a run fans out to drains, each drain predicts pending rows chunk by chunk.

``start_run`` (enqueued by the cron scheduler, the api or ``ctl run``) counts
the pending rows and enqueues one ``drain`` per live worker (fewer for small
backlogs; at least one, which waits in the queue if no worker is up). Each
drain repeats, in one transaction per chunk: claim up to ``BATCH_CHUNK_SIZE``
pending rows (``FOR UPDATE SKIP LOCKED``), check them, predict the good ones,
write predictions and statuses. It stops when no
pending row is left, so drains share the work whatever its size, and a row a
dead worker had claimed is simply claimed again.

A row the model cannot take (wrong number of values, null, not finite) is
marked ``failed`` with the reason; the rest of its chunk is predicted.

``mode="passthrough"`` does everything but the inference (it writes a fixed
answer under the model name ``passthrough``): the database-bound limit of the
same work, which ``ctl bench`` compares with the real thing.
"""

import contextlib
import logging
import math
import time
from typing import Any, Literal

import numpy as np
import orjson
import psycopg
import store
from prometheus_client import Counter
from pydantic import Field
from rq import Queue, Retry, get_current_job

from shared.jobs.contract import QueueSettings
from shared.jobs.worker import WorkerSettings, live_workers
from shared.kit.metrics import stage
from shared.kit.schemas import prediction_body
from shared.serving.model import OnnxModel
from shared.stores.postgres import PostgresSettings, connect

log = logging.getLogger("batch.jobs")

Mode = Literal["predict", "passthrough"]
PASSTHROUGH = ("passthrough", "0")
#: While this Redis key exists, runs triggered by the cron scheduler do nothing (``ctl bench``).
CRON_PAUSE_KEY = "mlsp:batch:cron-paused"
FLOAT32_MAX = float(np.finfo(np.float32).max)
ROWS = Counter("mlsp_batch_rows", "Input rows processed, by outcome.", ["outcome"])


class BatchSettings(PostgresSettings, QueueSettings, WorkerSettings):
    """How runs are cut into work: chunk size, staleness of a run, retries."""

    batch_chunk_size: int = Field(1000, ge=1, description="Rows claimed per transaction.")
    batch_run_stale_s: float = Field(
        60.0, gt=0, description="A run with no progress for this long no longer blocks a new one."
    )


_model: OnnxModel | None = None
_settings: BatchSettings | None = None
_connection: psycopg.Connection | None = None


def serve(model: OnnxModel | None, settings: BatchSettings) -> None:
    """Set what the jobs of this process use: the model (None: run no drains) and settings."""
    global _model, _settings  # noqa: PLW0603 - the one model and configuration of this process
    _model = model
    _settings = settings


def _config() -> BatchSettings:
    if _settings is None:
        raise RuntimeError("the batch jobs are not configured in this process (jobs.serve)")
    return _settings


def database() -> psycopg.Connection:
    """This process's connection, reopened when it broke."""
    global _connection  # noqa: PLW0603 - one connection per worker process
    if _connection is None or _connection.closed or _connection.broken:
        job = get_current_job()
        name = job.worker_name if job is not None and job.worker_name else "batch-job"
        _connection = connect(_config(), name)
    return _connection


def start_run(trigger: str = "cron", mode: Mode = "predict") -> dict[str, Any]:
    """Start a run over the pending rows: one drain job per live worker; what was started."""
    settings = _config()
    job = get_current_job()
    if job is None:
        raise RuntimeError("start_run runs as an RQ job")
    if trigger == "cron" and job.connection.exists(CRON_PAUSE_KEY):
        return {"run_id": None, "skipped": "scheduled runs are paused"}
    connection = database()
    with connection.transaction():
        store.lock_runs(connection)  # one run decision at a time
        busy = store.active_run(connection, settings.batch_run_stale_s)
        if busy is not None and busy != job.id:  # (its own id: this job is being retried)
            log.info("run %s is still going; not starting another", busy)
            return {"run_id": None, "skipped": f"run {busy} is still in progress", "active": busy}
        pending = store.count_pending(connection)
        if pending == 0:
            return {"run_id": None, "skipped": "no pending rows"}
        queue = Queue(settings.queue_name, connection=job.connection)
        workers = max(live_workers(queue), 1)
        drains = min(workers, math.ceil(pending / settings.batch_chunk_size))
        store.create_run(
            connection, job.id, trigger=trigger, mode=mode, pending=pending, drains=drains
        )
    for _ in range(drains):
        queue.enqueue_call(
            "jobs.drain",
            kwargs={"run_id": job.id, "mode": mode},
            timeout=settings.job_timeout_s,
            result_ttl=settings.result_ttl_s,
            failure_ttl=settings.result_ttl_s,
            retry=Retry(max=settings.job_retries) if settings.job_retries else None,
            description=f"drain pending rows for run {job.id}",
        )
    log.info(
        "run started",
        extra={"run_id": job.id, "trigger": trigger, "pending": pending, "drains": drains},
    )
    return {"run_id": job.id, "mode": mode, "pending_at_start": pending, "drains": drains}


def drain(run_id: str, mode: Mode = "predict") -> dict[str, Any]:
    """Predict pending rows chunk by chunk until none is left; counts and rate of this drain."""
    settings = _config()
    model = _model
    if model is None:
        raise RuntimeError("no model loaded in this worker")
    job = get_current_job()
    worker = job.worker_name if job is not None and job.worker_name else "local"
    identity = (
        PASSTHROUGH if mode == "passthrough" else (model.metadata.name, model.metadata.version)
    )
    connection = database()
    started = time.perf_counter()
    done = failed = 0
    while True:
        outcome = _one_chunk(
            connection, model=model, mode=mode, settings=settings, run_id=run_id,
            worker=worker, identity=identity,
        )  # fmt: skip
        if outcome is None:
            break
        done += len(outcome["done"][0])
        failed += len(outcome["failed"][0])
        ROWS.labels("done").inc(len(outcome["done"][0]))
        ROWS.labels("failed").inc(len(outcome["failed"][0]))
    with connection.transaction():
        last = store.finish_drain(connection, run_id)
    seconds = time.perf_counter() - started
    summary = {
        "run_id": run_id,
        "rows_done": done,
        "rows_failed": failed,
        "seconds": round(seconds, 3),
        "rows_per_s": round((done + failed) / seconds, 1) if seconds > 0 else None,
        "last_drain_of_run": last,
    }
    log.info("drain finished", extra=summary)
    return summary


def _one_chunk(
    connection: psycopg.Connection,
    *,
    model: OnnxModel,
    mode: Mode,
    settings: BatchSettings,
    run_id: str,
    worker: str,
    identity: tuple[str, str],
) -> dict[str, tuple] | None:
    """Claim, predict and write one chunk in one transaction; None when nothing is pending."""
    try:
        with stage("claim"):
            claimed = store.claim_chunk(connection, settings.batch_chunk_size)
        if not claimed:
            connection.rollback()
            return None
        outcome = predict_chunk(claimed, model, mode, settings.extra_work_ms)
        with stage("write"):  # the statements and the commit
            store.write_chunk(connection, run_id=run_id, worker=worker, model=identity, **outcome)
            connection.commit()
    except BaseException:
        with contextlib.suppress(psycopg.Error):  # a broken connection has rolled back already
            connection.rollback()  # the claimed rows are released, pending again
        raise
    return outcome


def predict_chunk(
    claimed: list[tuple[int, Any]], model: OnnxModel, mode: Mode, extra_work_ms: int = 0
) -> dict[str, tuple]:
    """Check and predict claimed rows: ``done`` (ids, JSON) and ``failed`` (ids, errors).

    The JSON is the array :func:`store.write_chunk` takes: ``{"id", "label",
    "probabilities"}`` per row predicted.
    """
    n_features = model.n_features
    ids = [row_id for row_id, _ in claimed]
    features = [values for _, values in claimed]
    good, errors = check_rows(features, n_features)
    good_ids = [ids[i] for i in good]
    if not good:
        return {"done": ([], "[]"), "failed": _failed(ids, errors)}
    rows = np.asarray([features[i] for i in good], dtype=np.float32)
    with stage("inference"):
        if mode == "passthrough":
            n_classes = len(model.metadata.labels)
            probabilities = np.full((len(rows), n_classes), 1 / n_classes, dtype=np.float32)
        else:
            if extra_work_ms:
                time.sleep(extra_work_ms / 1000)  # EXTRA_WORK_MS: stands in for a heavier model
            probabilities = model.predict_proba(rows)
    predictions = prediction_body(model.metadata, probabilities)["predictions"]
    for row_id, prediction in zip(good_ids, predictions, strict=True):
        prediction["id"] = row_id
    return {"done": (good_ids, orjson.dumps(predictions).decode()), "failed": _failed(ids, errors)}


def _failed(ids: list[int], errors: dict[int, str]) -> tuple[list[int], list[str]]:
    return [ids[i] for i in errors], list(errors.values())


def check_rows(features: list[Any], n_features: int) -> tuple[list[int], dict[int, str]]:
    """Indexes of the rows the model can take, and the reason for each other one."""
    try:
        array = np.asarray(features, dtype=np.float64)
        if array.ndim == 2 and array.shape[1] == n_features:
            with np.errstate(over="ignore"):
                finite = np.isfinite(array.astype(np.float32)).all(axis=1)
            if finite.all():
                return list(range(len(features))), {}
    except (TypeError, ValueError):  # ragged rows or nulls: look at each row
        pass
    good: list[int] = []
    errors: dict[int, str] = {}
    for i, row in enumerate(features):
        reason = _row_problem(row, n_features)
        if reason is None:
            good.append(i)
        else:
            errors[i] = reason
    return good, errors


def _row_problem(row: Any, n_features: int) -> str | None:
    if not isinstance(row, list):
        return f"features must be an array of {n_features} numbers"
    if len(row) != n_features:
        return f"has {len(row)} values; the model takes {n_features}"
    for j, value in enumerate(row):
        if value is None:
            return f"value {j} is null"
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"value {j} is not a number"
        if not math.isfinite(value) or abs(value) > FLOAT32_MAX:
            return f"value {j} ({value}) is not a finite float32"
    return None
