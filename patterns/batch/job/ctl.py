"""The batch pattern's command line, run in the job image (``make batch-load`` etc.).

    python -m ctl migrate               create the tables when missing
    python -m ctl load ROWS [--seed S]  append ROWS pending rows of sample data
    python -m ctl run [--wait]          start a run now (as the scheduler would)
    python -m ctl status                pending, done and failed rows, latest runs (the api's)
    python -m ctl bench ROWS [--rounds N]  rows/s of runs over ROWS fresh rows, and of the
                                        same runs without inference (the database-bound limit)

Sample rows are the model's held-out examples (from its metadata) with a
little seeded jitter, so every row is a plausible flower.
"""

import argparse
import statistics
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from typing import Any

import jobs
import numpy as np
import orjson
import psycopg
import store
from pydantic import Field, SecretStr
from rq import Queue
from rq.job import Job

from shared.jobs.contract import QueueSettings
from shared.jobs.input_contract import read_metadata
from shared.kit.api_keys import bearer_header
from shared.kit.settings import ModelSettings
from shared.stores.postgres import PostgresSettings, connect, password_refused
from shared.stores.redis_client import RedisSettings
from shared.stores.redis_client import connect as connect_redis

BENCH_NAMES = {"predict": "with inference", "passthrough": "read + write only (no model)"}


class Settings(ModelSettings, PostgresSettings, RedisSettings, QueueSettings):
    """What the command line reaches: the model repository, PostgreSQL, Redis, the api."""

    api_url: str = Field("", description="The batch api, e.g. http://api:8080 (for status).")
    api_key: SecretStr = Field(
        SecretStr(""), description="The api's key when it needs one (the first of a list)."
    )


def status(settings: Settings) -> dict[str, Any]:
    """The api's ``/progress``, printed as JSON."""
    if not settings.api_url:
        raise SystemExit("set API_URL to the batch api's URL")
    request = urllib.request.Request(
        f"{settings.api_url}/progress", headers=bearer_header(settings.api_key)
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        progress = orjson.loads(answer.read())
    print(orjson.dumps(progress, option=orjson.OPT_INDENT_2).decode())
    return progress


def sample_rows(examples: list[list[float]], count: int, seed: int) -> Iterator[list[float]]:
    """``count`` rows: examples picked at random, each value jittered by up to 0.2, >= 0.1."""
    rng = np.random.default_rng(seed)
    base = np.asarray(examples, dtype=np.float64)
    for start in range(0, count, 10_000):
        size = min(10_000, count - start)
        picked = base[rng.integers(0, len(base), size)]
        jittered = np.maximum(np.round(picked + rng.uniform(-0.2, 0.2, picked.shape), 1), 0.1)
        yield from jittered.tolist()


def load(settings: Settings, rows: int, seed: int, *, quiet: bool = False) -> int:
    """Append ``rows`` sample rows; how many."""
    metadata = read_metadata(settings.model_dir, settings.model_name, settings.model_version)
    examples = [example["input"] for example in metadata.examples]
    with connect(settings, "batch-ctl") as connection:
        count = store.insert_rows(connection, sample_rows(examples, rows, seed))
    if not quiet:
        print(f"loaded {count} pending rows")
    return count


def trigger(settings: Settings, trigger_name: str, mode: jobs.Mode = "predict") -> Job:
    """Enqueue a run now."""
    queue = Queue(settings.queue_name, connection=connect_redis(settings))
    return queue.enqueue_call(
        "jobs.start_run",
        kwargs={"trigger": trigger_name, "mode": mode},
        timeout=60,
        result_ttl=settings.result_ttl_s,
        failure_ttl=settings.result_ttl_s,
        description=f"{mode} run ({trigger_name})",
    )


def wait_for_run(settings: Settings, job: Job, timeout_s: float = 3600) -> dict[str, Any]:
    """Wait until the run started by ``job`` (or the one already going) has finished.

    Returns the run's id, rows and rate; an empty dict when there was nothing to do.
    """
    deadline = time.monotonic() + timeout_s
    run_id = None
    with connect(settings, "batch-ctl", autocommit=True) as connection:
        while time.monotonic() < deadline:
            if run_id is None:
                status = job.get_status()
                if status == "failed":
                    raise SystemExit(f"the run's job {job.id} failed")
                if status == "finished":
                    started = job.return_value()
                    run_id = started.get("run_id") or started.get("active")
                    if run_id is None:
                        print(f"no run: {started.get('skipped')}")
                        return {}
                    if run_id != job.id:
                        print(f"run {run_id} was already going; waiting for it")
            if run_id is not None:
                rate = store.run_rate(connection, run_id)
                if rate is not None:
                    return {"run_id": run_id, **rate}
            time.sleep(0.2)
    raise SystemExit(f"the run did not finish within {timeout_s} s")


def run(settings: Settings, wait: bool) -> None:
    """Start a run now, and optionally wait for it."""
    job = trigger(settings, "cli")
    print(f"run {job.id} queued")
    if wait:
        rate = wait_for_run(settings, job)
        if rate:
            print(f"run {rate['run_id']} finished: {rate['rows']} rows in {rate['seconds']:.2f} s")


def vacuum(settings: Settings) -> None:
    """VACUUM ANALYZE the batch tables."""
    with connect(settings, "batch-ctl", autocommit=True) as connection:
        store.vacuum(connection)


def bench(settings: Settings, rows: int, seed: int, rounds: int = 1) -> dict[str, Any]:
    """Time runs over ``rows`` rows without inference and with it, ``rounds`` times each.

    Every run starts from the same state: empty tables, the same sample rows
    (same seed), vacuumed; so the two kinds differ only by the model. Rounds
    alternate which kind goes first; the report gives each kind's median and
    best rate (on a shared machine the best is the least disturbed).
    """
    pause = connect_redis(settings)
    pause.set(jobs.CRON_PAUSE_KEY, "ctl bench", ex=3600)  # the scheduler must not run meanwhile
    rates: dict[str, list[float]] = {"predict": [], "passthrough": []}
    print(f"{'round':<7}{'run':<30}{'rows':>8}{'seconds':>9}{'rows/s':>9}")
    try:
        for round_ in range(1, rounds + 1):
            # Alternate the order, ending with a real run: the tables keep real predictions.
            last_round_parity = (rounds - round_) % 2 == 0
            order = ("passthrough", "predict") if last_round_parity else ("predict", "passthrough")
            for mode in order:
                with connect(settings, "batch-ctl") as connection:
                    store.migrate(connection)
                    store.clear(connection)
                load(settings, rows, seed, quiet=True)
                vacuum(settings)
                rate = wait_for_run(settings, trigger(settings, "bench", mode))
                rates[mode].append(rate["rows_per_s"])
                print(f"{round_:<7}{BENCH_NAMES[mode]:<30}{rate['rows']:>8}"
                      f"{rate['seconds']:>9.2f}{rate['rows_per_s']:>9.0f}")  # fmt: skip
    finally:
        pause.delete(jobs.CRON_PAUSE_KEY)
    report: dict[str, Any] = {"rows": rows, "rounds": rounds}
    for mode, key in (("predict", "predict"), ("passthrough", "db_only")):
        report[f"{key}_rows_per_s_median"] = round(statistics.median(rates[mode]), 1)
        report[f"{key}_rows_per_s_best"] = round(max(rates[mode]), 1)
    report["median_share_of_db_limit"] = round(
        report["predict_rows_per_s_median"] / report["db_only_rows_per_s_median"], 3
    )
    print(orjson.dumps(report).decode())
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m ctl", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="create the tables when missing")
    loader = commands.add_parser("load", help="append sample rows")
    loader.add_argument("rows", type=int)
    loader.add_argument("--seed", type=int, default=42)
    runner = commands.add_parser("run", help="start a run now")
    runner.add_argument("--wait", action="store_true", help="wait until the run has finished")
    commands.add_parser("status", help="the api's progress")
    bencher = commands.add_parser("bench", help="rows/s with and without inference")
    bencher.add_argument("rows", type=int)
    bencher.add_argument("--seed", type=int, default=42)
    bencher.add_argument("--rounds", type=int, default=1, help="runs of each kind (default 1)")
    args = parser.parse_args(argv)
    settings = Settings()
    try:
        if args.command == "migrate":
            with connect(settings, "batch-migrate") as connection:
                store.migrate(connection)
            print("batch tables ready")
        elif args.command == "load":
            load(settings, args.rows, args.seed)
        elif args.command == "run":
            run(settings, args.wait)
        elif args.command == "status":
            status(settings)
        else:
            bench(settings, args.rows, args.seed, args.rounds)
    except psycopg.OperationalError as exc:
        if (advice := password_refused(exc)) is None:
            raise
        print(f"ctl {args.command}: {advice}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
