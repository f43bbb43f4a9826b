"""The batch tables and every statement the batch job runs on them.

``batch_inputs``       one row per input: features (float4, as the model takes them),
                       status pending|done|failed, error
``batch_predictions``  one row per input and model (name, version): label,
                       probabilities, the run and worker that wrote it, when
``batch_runs``         one row per run: trigger, rows done and failed, start and end

Workers claim pending rows with ``FOR UPDATE SKIP LOCKED`` (two workers never
get the same row) and write a chunk's predictions, its rows' new status and
the run's counters in one transaction: a worker that dies mid-chunk leaves its
rows pending for the next claim, and the primary key of ``batch_predictions``
makes a second prediction of the same row by the same model impossible.
"""

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg

SCHEMA = """
CREATE TABLE IF NOT EXISTS batch_inputs (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    features      real[] NOT NULL,
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'done', 'failed')),
    error         text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    processed_at  timestamptz
);
CREATE INDEX IF NOT EXISTS batch_inputs_pending ON batch_inputs (id) WHERE status = 'pending';

CREATE TABLE IF NOT EXISTS batch_runs (
    id            text PRIMARY KEY,
    trigger       text NOT NULL,
    mode          text NOT NULL,
    pending_at_start bigint NOT NULL,
    drains        integer NOT NULL,
    drains_done   integer NOT NULL DEFAULT 0,
    rows_done     bigint NOT NULL DEFAULT 0,
    rows_failed   bigint NOT NULL DEFAULT 0,
    started_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    heartbeat_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at   timestamptz
);

CREATE TABLE IF NOT EXISTS batch_predictions (
    input_id      bigint NOT NULL REFERENCES batch_inputs (id) ON DELETE CASCADE,
    model_name    text NOT NULL,
    model_version text NOT NULL,
    label         text NOT NULL,
    probabilities jsonb NOT NULL,
    run_id        text NOT NULL,
    worker        text NOT NULL,
    predicted_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (input_id, model_name, model_version)
);
"""
# Advisory locks: concurrent migrations (workers starting at once); run decisions.
_MIGRATION_LOCK = 7_316_201
_RUNS_LOCK = 7_316_202

CLAIM = """
SELECT id, features FROM batch_inputs
WHERE status = 'pending'
ORDER BY id
LIMIT %s
FOR UPDATE SKIP LOCKED
"""

# The chunk's predictions travel as one JSON array: one string to send, parsed in C.
WRITE_PREDICTIONS = """
INSERT INTO batch_predictions
    (input_id, model_name, model_version, label, probabilities, run_id, worker)
SELECT chunk.id, %s, %s, chunk.label, chunk.probabilities, %s, %s
FROM jsonb_to_recordset(%s::jsonb) AS chunk (id bigint, label text, probabilities jsonb)
ON CONFLICT (input_id, model_name, model_version) DO NOTHING
"""

MARK_DONE = """
UPDATE batch_inputs SET status = 'done', error = NULL, processed_at = clock_timestamp()
WHERE id = ANY(%b::bigint[])
"""

MARK_FAILED = """
UPDATE batch_inputs AS i SET status = 'failed', error = f.error, processed_at = clock_timestamp()
FROM unnest(%s::bigint[], %s::text[]) AS f (id, error)
WHERE i.id = f.id
"""

COUNT_ON_RUN = """
UPDATE batch_runs
SET rows_done = rows_done + %s, rows_failed = rows_failed + %s, heartbeat_at = clock_timestamp()
WHERE id = %s
"""


def migrate(connection: psycopg.Connection) -> None:
    """Create the tables and index when missing (safe to run from several processes at once)."""
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        connection.execute(SCHEMA)


def claim_chunk(connection: psycopg.Connection, size: int) -> list[tuple[int, Any]]:
    """Lock and return up to ``size`` pending rows ``(id, features)`` nobody else holds.

    Call inside a transaction: the rows stay locked until it ends.
    """
    return connection.execute(CLAIM, (size,)).fetchall()


def write_chunk(
    connection: psycopg.Connection,
    *,
    run_id: str,
    worker: str,
    model: tuple[str, str],
    done: tuple[Sequence[int], str],
    failed: tuple[Sequence[int], Sequence[str]],
) -> None:
    """Write a claimed chunk's outcome, inside the claim's transaction.

    ``done`` is (ids, their predictions as a JSON array of ``{"id", "label",
    "probabilities"}``); ``failed`` is (ids, errors).
    """
    ids, predictions = done
    failed_ids, errors = failed
    if ids:
        connection.execute(WRITE_PREDICTIONS, (*model, run_id, worker, predictions))
        connection.execute(MARK_DONE, (list(ids),))
    if failed_ids:
        connection.execute(MARK_FAILED, (list(failed_ids), list(errors)))
    connection.execute(COUNT_ON_RUN, (len(ids), len(failed_ids), run_id))


def count_pending(connection: psycopg.Connection) -> int:
    """How many rows wait for a prediction."""
    return connection.execute(
        "SELECT count(*) FROM batch_inputs WHERE status = 'pending'"
    ).fetchone()[0]


def lock_runs(connection: psycopg.Connection) -> None:
    """Hold the run lock until the transaction ends (one run decision at a time)."""
    connection.execute("SELECT pg_advisory_xact_lock(%s)", (_RUNS_LOCK,))


def active_run(connection: psycopg.Connection, stale_s: float) -> str | None:
    """The id of an unfinished run that made progress in the last ``stale_s`` seconds."""
    row = connection.execute(
        "SELECT id FROM batch_runs WHERE finished_at IS NULL "
        "AND heartbeat_at > clock_timestamp() - make_interval(secs => %s) "
        "ORDER BY started_at DESC LIMIT 1",
        (stale_s,),
    ).fetchone()
    return row[0] if row else None


def create_run(
    connection: psycopg.Connection,
    run_id: str,
    *,
    trigger: str,
    mode: str,
    pending: int,
    drains: int,
) -> None:
    """Record a run that is about to start ``drains`` drain jobs (once, if retried)."""
    connection.execute(
        "INSERT INTO batch_runs (id, trigger, mode, pending_at_start, drains) "
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
        (run_id, trigger, mode, pending, drains),
    )


def finish_drain(connection: psycopg.Connection, run_id: str) -> bool:
    """Count one finished drain of the run; True when it was the last one."""
    row = connection.execute(
        "UPDATE batch_runs SET drains_done = drains_done + 1, heartbeat_at = clock_timestamp(), "
        "finished_at = CASE WHEN drains_done + 1 >= drains THEN clock_timestamp() END "
        "WHERE id = %s RETURNING finished_at IS NOT NULL",
        (run_id,),
    ).fetchone()
    return bool(row and row[0])


def insert_rows(connection: psycopg.Connection, rows: Iterable[Sequence[float]]) -> int:
    """Append rows of features as pending inputs (COPY); how many."""
    count = 0
    with (
        connection.cursor() as cursor,
        cursor.copy("COPY batch_inputs (features) FROM STDIN") as copy,
    ):
        for features in rows:
            copy.write_row((list(features),))
            count += 1
    return count


# What ``ctl bench`` needs: a clean slate and the rate of a run.


def clear(connection: psycopg.Connection) -> None:
    """Remove every input, prediction and run."""
    connection.execute("TRUNCATE batch_predictions, batch_runs, batch_inputs RESTART IDENTITY")


def run_rate(connection: psycopg.Connection, run_id: str) -> dict[str, Any] | None:
    """A finished run's rows and seconds (start to its last commit); None while unfinished."""
    row = connection.execute(
        "SELECT rows_done, rows_failed, "
        "extract(epoch FROM finished_at - started_at)::float8 "
        "FROM batch_runs WHERE id = %s AND finished_at IS NOT NULL",
        (run_id,),
    ).fetchone()
    if row is None:
        return None
    rows = row[0] + row[1]
    seconds = row[2]
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds if seconds else None}


def vacuum(connection: psycopg.Connection) -> None:
    """Reclaim dead rows and refresh statistics (needs an autocommit connection)."""
    connection.execute("VACUUM ANALYZE batch_inputs, batch_predictions, batch_runs")
