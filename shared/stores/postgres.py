"""PostgreSQL for the services that keep data in it: settings, connections, errors, readiness.

:class:`PostgresSettings` reads ``DATABASE_URL`` (no default: peers are found
by URL). Connections get a connect timeout, a statement timeout and an idle-
in-transaction timeout, so neither a slow query nor a stuck client holds locks
for long. :func:`postgres_errors` turns failures into the answers a client
can act on (503 + ``Retry-After`` when the database is down, 504 when a
statement ran out of time). An api borrows its connections from
:class:`AsyncDatabase`, a small pool, and never waits on the database in its
event loop.
"""

import logging
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager, contextmanager

import psycopg
from psycopg_pool import AsyncConnectionPool
from pydantic import Field

from shared.kit.errors import DependencyTimeout, DependencyUnavailable
from shared.kit.health import CHECK_TIMEOUT_S, Check
from shared.kit.health_server import SyncCheck
from shared.kit.settings import _EnvSettings

log = logging.getLogger("shared.stores.postgres")


class PostgresSettings(_EnvSettings):
    """Where PostgreSQL is and how long to wait for it."""

    database_url: str = Field(description="postgresql://user:password@host:5432/database")
    postgres_connect_timeout_s: int = Field(3, ge=1, description="Per connection attempt.")
    postgres_statement_timeout_s: float = Field(60.0, gt=0, description="Per statement.")
    postgres_idle_in_transaction_s: float = Field(
        60.0, gt=0, description="A client idle this long inside a transaction is cut off."
    )
    # 4: make load at pool sizes 1, 4 and 8 (loadtests/reports/pool.md) beat the one connection
    # at every size but could not separate the sizes on a saturated machine; a few connections
    # cover what one event loop has waiting, and each costs PostgreSQL a backend.
    postgres_pool_size: int = Field(
        4, ge=1, description="Connections an api keeps open (its statements run side by side)."
    )
    postgres_pool_timeout_s: float = Field(
        3.0, gt=0, description="A request waits this long for a free connection, then gets 503."
    )

    def connect_options(self, application_name: str) -> dict[str, object]:
        """Keyword arguments of ``psycopg.connect`` with the timeouts and a name."""
        statement_ms = int(self.postgres_statement_timeout_s * 1000)
        idle_ms = int(self.postgres_idle_in_transaction_s * 1000)
        return {
            "connect_timeout": self.postgres_connect_timeout_s,
            "application_name": application_name,
            "options": f"-c statement_timeout={statement_ms} "
            f"-c idle_in_transaction_session_timeout={idle_ms}",
        }


def connect(
    settings: PostgresSettings, application_name: str, *, autocommit: bool = False
) -> psycopg.Connection:
    """A connection with the settings' timeouts."""
    return psycopg.connect(
        settings.database_url, autocommit=autocommit, **settings.connect_options(application_name)
    )


async def connect_async(
    settings: PostgresSettings, application_name: str
) -> psycopg.AsyncConnection:
    """An autocommit asyncio connection with the settings' timeouts (for an api)."""
    return await psycopg.AsyncConnection.connect(
        settings.database_url, autocommit=True, **settings.connect_options(application_name)
    )


PASSWORD_REFUSED = (
    "PostgreSQL refused the password: its data volume was made with another POSTGRES_PASSWORD."
    " Start empty with `make down PATTERN=<pattern> WIPE=1` (deletes the data), or set"
    " POSTGRES_PASSWORD to the password the volume was made with."
)


def password_refused(exc: BaseException) -> str | None:
    """:data:`PASSWORD_REFUSED` when ``exc`` is PostgreSQL refusing the password, else None.

    For the one-shot services (migrations, seeds): one line a user can act on instead of
    a traceback, when the database's volume was made with another password.
    """
    refused = isinstance(exc, psycopg.OperationalError) and (
        "password authentication failed" in str(exc)
    )
    return PASSWORD_REFUSED if refused else None


@contextmanager
def postgres_errors(action: str, retry_after_s: int = 2) -> Iterator[None]:
    """Raise the matching :mod:`shared.kit.errors` error when PostgreSQL fails during ``action``."""
    try:
        yield
    except psycopg.errors.QueryCanceled as exc:
        raise DependencyTimeout(f"{action}: the database did not answer in time") from exc
    except psycopg.OperationalError as exc:
        raise DependencyUnavailable(
            f"{action}: the database is unavailable", retry_after_s=retry_after_s
        ) from exc


def postgres_check(settings: PostgresSettings, application_name: str) -> SyncCheck:
    """A readiness check (for a worker's health server): a new connection answers SELECT 1."""

    def check() -> str | None:
        try:
            with connect(settings, f"{application_name}-health", autocommit=True) as connection:
                connection.execute("SELECT 1")
        except psycopg.Error as exc:
            return f"PostgreSQL: {type(exc).__name__}: {str(exc).strip()[:200]}"
        return None

    return check


class AsyncDatabase:
    """A small pool of asyncio connections for an api (``psycopg_pool``).

    Statements of concurrent requests run side by side on up to
    ``POSTGRES_POOL_SIZE`` connections, each request borrowing one for as long
    as it needs. A connection that broke (the server restarted or cut it off)
    fails the one request that found it, and the pool drops it and opens a new
    one in the background; the others are not touched. A request finding every
    connection busy waits up to ``POSTGRES_POOL_TIMEOUT_S``, then gets a 503.
    """

    def __init__(self, settings: PostgresSettings, application_name: str) -> None:
        self.settings = settings
        self.pool = AsyncConnectionPool(
            settings.database_url,
            kwargs={"autocommit": True, **settings.connect_options(application_name)},
            min_size=settings.postgres_pool_size,
            max_size=settings.postgres_pool_size,
            timeout=settings.postgres_pool_timeout_s,
            name=application_name,
            open=False,
        )

    async def open(self) -> None:
        """Start opening the connections (in the background: a database down now is a 503 later)."""
        await self.pool.open(wait=False)

    async def close(self) -> None:
        """Close every connection."""
        await self.pool.close()

    def connection(self) -> AbstractAsyncContextManager[psycopg.AsyncConnection]:
        """Borrow a connection for a block (``async with database.connection() as c:``)."""
        return self.pool.connection()

    def check(self, query: str = "SELECT 1", no_row: str = "no row") -> Check:
        """A readiness check: a pooled connection answers ``query`` with a row (else ``no_row``).

        The default query always answers a row; pass one over the service's own tables
        (e.g. ``SELECT 1 FROM items LIMIT 1``) to also check they are filled.
        """

        async def check() -> str | None:
            try:
                async with self.pool.connection(timeout=CHECK_TIMEOUT_S / 2) as connection:
                    cursor = await connection.execute(query)
                    if await cursor.fetchone() is None:
                        return f"PostgreSQL: {no_row}"
            except psycopg.Error as exc:
                return f"PostgreSQL: {type(exc).__name__}: {str(exc).strip()[:200]}"
            return None

        return check
