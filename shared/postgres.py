"""PostgreSQL for the services that keep data in it: settings, connections, errors, readiness.

:class:`PostgresSettings` reads ``DATABASE_URL`` (no default: peers are found
by URL). Connections get a connect timeout, a statement timeout and an idle-
in-transaction timeout, so neither a slow query nor a stuck client holds locks
for long. :func:`postgres_errors` turns failures into the answers a client
can act on (503 + ``Retry-After`` when the database is down, 504 when a
statement ran out of time).
"""

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from pydantic import Field

from shared.errors import DependencyTimeout, DependencyUnavailable
from shared.health import Check
from shared.health_server import SyncCheck
from shared.settings import _EnvSettings

log = logging.getLogger("shared.postgres")


class PostgresSettings(_EnvSettings):
    """Where PostgreSQL is and how long to wait for it."""

    database_url: str = Field(description="postgresql://user:password@host:5432/database")
    postgres_connect_timeout_s: int = Field(3, ge=1, description="Per connection attempt.")
    postgres_statement_timeout_s: float = Field(60.0, gt=0, description="Per statement.")
    postgres_idle_in_transaction_s: float = Field(
        60.0, gt=0, description="A client idle this long inside a transaction is cut off."
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
    """Raise the matching :mod:`shared.errors` error when PostgreSQL fails during ``action``."""
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


class AsyncConnectionHolder:
    """One asyncio connection for an api, made on first use and remade when it broke.

    psycopg serialises the statements of one connection, which suits a small
    api; a busier one would use a pool.
    """

    def __init__(self, settings: PostgresSettings, application_name: str) -> None:
        self.settings = settings
        self.application_name = application_name
        self._connection: psycopg.AsyncConnection | None = None
        self._connecting = asyncio.Lock()

    def _usable(self) -> bool:
        connection = self._connection
        return connection is not None and not connection.closed and not connection.broken

    async def get(self) -> psycopg.AsyncConnection:
        """The connection, (re)connecting when there is none or it broke (503 when it can't).

        Requests that find no connection at the same moment wait for one connection attempt
        rather than each opening (and leaking) their own.
        """
        if not self._usable():
            async with self._connecting:
                if not self._usable():
                    with postgres_errors("connecting to the database"):
                        self._connection = await connect_async(self.settings, self.application_name)
        assert self._connection is not None
        return self._connection

    async def close(self) -> None:
        """Close the connection, if any."""
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    def check(self) -> Check:
        """A readiness check: the connection answers SELECT 1."""

        async def check() -> str | None:
            try:
                connection = await self.get()
                await connection.execute("SELECT 1")
            except (psycopg.Error, DependencyUnavailable) as exc:
                return f"PostgreSQL: {type(exc).__name__}: {str(exc).strip()[:200]}"
            return None

        return check
