"""PostgreSQL helpers (timeouts, errors, readiness, reconnects) and the input contract."""

import asyncio
from pathlib import Path

import numpy as np
import psycopg
import pytest

from shared.jobs.input_contract import InputContract, read_metadata
from shared.kit.errors import DependencyTimeout, DependencyUnavailable, InvalidInput
from shared.kit.settings import ModelSettings
from shared.model.metadata import ModelError
from shared.stores.postgres import (
    AsyncDatabase,
    PostgresSettings,
    connect,
    postgres_check,
    postgres_errors,
)
from tests.compose_stack import free_port


def test_connections_carry_the_timeouts(postgres_url: str) -> None:
    settings = PostgresSettings(database_url=postgres_url, postgres_statement_timeout_s=0.2)
    with connect(settings, "unit", autocommit=True) as connection:
        assert connection.execute("SHOW statement_timeout").fetchone()[0] == "200ms"
        assert connection.execute("SHOW application_name").fetchone()[0] == "unit"
        with pytest.raises(DependencyTimeout), postgres_errors("sleeping"):
            connection.execute("SELECT pg_sleep(1)")


def test_a_down_database_is_unavailable_and_not_ready() -> None:
    settings = PostgresSettings(
        database_url=f"postgresql://x@127.0.0.1:{free_port()}/x", postgres_connect_timeout_s=1
    )
    with pytest.raises(DependencyUnavailable) as down, postgres_errors("reading"):
        connect(settings, "unit")
    assert down.value.headers == {"Retry-After": "2"}
    reason = postgres_check(settings, "unit")()
    assert reason is not None
    assert reason.startswith("PostgreSQL: OperationalError")


def test_the_readiness_check_passes_on_a_live_database(postgres_url: str) -> None:
    assert postgres_check(PostgresSettings(database_url=postgres_url), "unit")() is None


def test_a_pooled_connection_cut_off_by_the_server_fails_one_request_at_most(
    postgres_url: str,
) -> None:
    settings = PostgresSettings(database_url=postgres_url, postgres_pool_size=3)
    database = AsyncDatabase(settings, "unit-pool")

    async def one_request() -> bool:
        try:
            with postgres_errors("reading"):
                async with database.connection() as connection:
                    cursor = await connection.execute("SELECT 41 + 1")
                    return await cursor.fetchone() == (42,)
        except DependencyUnavailable:
            return False

    async def scenario() -> list[bool]:
        await database.open()
        await database.pool.wait()
        assert await database.check()() is None
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            (cut,) = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM (SELECT pid FROM pg_stat_activity "
                "WHERE application_name = 'unit-pool' LIMIT 1) AS one"
            ).fetchone()
        assert cut == 1
        # Every pooled connection is borrowed in turn, the cut one among them.
        answers = [await one_request() for _ in range(3 * settings.postgres_pool_size)]
        answers += await asyncio.gather(*(one_request() for _ in range(10)))
        assert database.pool.get_stats()["returns_bad"] == 1  # found broken, dropped, replaced
        await database.close()
        return answers

    answers = asyncio.run(scenario())
    assert answers.count(False) <= 1
    assert answers[-10:] == [True] * 10


def test_the_pools_check_reports_a_down_database() -> None:
    settings = PostgresSettings(database_url=f"postgresql://x@127.0.0.1:{free_port()}/x")
    database = AsyncDatabase(settings, "unit-down")

    async def scenario() -> str | None:
        await database.open()
        try:
            return await database.check()()
        finally:
            await database.close()

    reason = asyncio.run(scenario())
    assert reason is not None
    assert reason.startswith("PostgreSQL: PoolTimeout")


def test_the_input_contract_decodes_against_the_metadata(model_repo: Path) -> None:
    contract = InputContract(ModelSettings(model_dir=model_repo, max_instances=2))
    assert asyncio.run(contract.check_ready()) == "model metadata not loaded"
    assert contract.load().name == "iris"
    assert asyncio.run(contract.check_ready()) is None
    rows = contract.decode(b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}')
    assert rows.dtype == np.float32
    assert rows.shape == (1, 4)
    with pytest.raises(InvalidInput, match="at most 2"):
        contract.decode(b'{"instances": [[1,2,3,4],[1,2,3,4],[1,2,3,4]]}')


def test_a_missing_model_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no model 'iris'"):
        read_metadata(tmp_path, "iris")
    (tmp_path / "iris" / "1").mkdir(parents=True)
    (tmp_path / "iris" / "1" / "metadata.json").write_text("{not json")
    with pytest.raises(ModelError, match="is not valid metadata"):
        read_metadata(tmp_path, "iris")
