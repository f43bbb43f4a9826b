"""Fixtures of the batch tests: the job modules configured against real PostgreSQL and Redis."""

import importlib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import psycopg
import pytest
import redis

from shared.jobs.worker import LiveWorker, WorkerSettings
from shared.serving.model import OnnxModel

JOB_DIR = Path(__file__).resolve().parents[1] / "job"


@pytest.fixture
def batch_env(
    monkeypatch: pytest.MonkeyPatch, model_repo: Path, postgres_url: str, redis_url: str
) -> dict[str, str]:
    """The environment of the batch services, pointing at the test servers."""
    env = {
        "MODEL_DIR": str(model_repo),
        "DATABASE_URL": postgres_url,
        "REDIS_URL": redis_url,
        "QUEUE_NAME": "batch",
        "BATCH_CHUNK_SIZE": "50",
        "JOB_RETRIES": "1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def job(
    batch_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, model_repo: Path
) -> Iterator[ModuleType]:
    """The job modules (jobs, store, ctl) importable, the tables made, the model served."""
    monkeypatch.syspath_prepend(str(JOB_DIR))
    jobs = importlib.import_module("jobs")
    store = importlib.import_module("store")
    settings = jobs.BatchSettings()
    with psycopg.connect(batch_env["DATABASE_URL"]) as connection:
        store.migrate(connection)
    jobs.serve(OnnxModel.load(model_repo, "iris"), settings)
    jobs._connection = None  # a new database per test
    yield jobs
    if jobs._connection is not None:
        jobs._connection.close()
    jobs._connection = None


@pytest.fixture
def ctl(job: ModuleType) -> ModuleType:
    """The command-line module."""
    return importlib.import_module("ctl")


@pytest.fixture
def db(batch_env: dict[str, str]) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the test database."""
    with psycopg.connect(batch_env["DATABASE_URL"], autocommit=True) as connection:
        yield connection


@pytest.fixture
def run_jobs(batch_env: dict[str, str]) -> Callable[[], None]:
    """Runs every queued batch job (start_run, then its drains) in this process."""

    def run() -> None:
        LiveWorker(
            ["batch"],
            connection=redis.Redis.from_url(batch_env["REDIS_URL"]),
            name="unit",
            settings=WorkerSettings(),
            log_jobs=False,
        ).work(burst=True)

    return run
