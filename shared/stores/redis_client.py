"""Redis for the services that queue work or cache answers.

:class:`RedisSettings` reads ``REDIS_URL`` (no default: peers are found by
URL, never by a hard-coded host) and the client's timeouts; :func:`connect`
makes a client that gives up quickly instead of hanging a request;
:func:`redis_errors` turns Redis failures into the answers a client can act
on (503 + ``Retry-After`` when Redis is down or refuses writes, 504 when it
is too slow); :func:`redis_check` is the readiness check.

An api's calls go through :func:`connect_async` (``redis.asyncio``): a
synchronous call in an ``async`` handler would stop every other request of the
process for its round trip. :func:`connect` is for workers and tools, which
have no event loop to hold up.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from pydantic import Field
from redis import asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from shared.kit.errors import DependencyTimeout, DependencyUnavailable
from shared.kit.health import Check
from shared.kit.settings import _EnvSettings

log = logging.getLogger("shared.stores.redis_client")


class RedisSettings(_EnvSettings):
    """Where Redis is and how long to wait for it."""

    redis_url: str = Field(
        description="redis://[:password@]host:port/db, e.g. redis://:secret@redis:6379/0."
    )
    redis_socket_timeout_s: float = Field(2.0, gt=0, description="Per command.")
    redis_connect_timeout_s: float = Field(2.0, gt=0, description="Per connection attempt.")
    redis_retry_after_s: int = Field(2, ge=1, description="Retry-After when Redis is down.")


def _client_options(
    settings: RedisSettings, client_name: str | None, retry: type[Retry] | type[AsyncRetry]
) -> dict[str, Any]:
    """Short timeouts and two quick retries on connection errors."""
    return {
        "socket_timeout": settings.redis_socket_timeout_s,
        "socket_connect_timeout": settings.redis_connect_timeout_s,
        "health_check_interval": 30,
        "retry": retry(ExponentialBackoff(cap=0.2, base=0.02), retries=2),
        "client_name": client_name,
    }


def connect(settings: RedisSettings, *, client_name: str | None = None) -> redis.Redis:
    """A Redis client with short timeouts and two quick retries on connection errors."""
    return redis.Redis.from_url(settings.redis_url, **_client_options(settings, client_name, Retry))


def connect_async(settings: RedisSettings, *, client_name: str | None = None) -> aioredis.Redis:
    """:func:`connect` for asyncio code (``redis.asyncio``): same timeouts and retries."""
    options = _client_options(settings, client_name, AsyncRetry)
    return aioredis.Redis.from_url(settings.redis_url, **options)


@contextmanager
def redis_errors(action: str, retry_after_s: int = 2) -> Iterator[None]:
    """Raise the matching :mod:`shared.kit.errors` error when Redis fails during ``action``."""
    try:
        yield
    except redis.TimeoutError as exc:
        raise DependencyTimeout(f"{action}: Redis did not answer in time") from exc
    except redis.ConnectionError as exc:  # down, restarting, or still loading its data
        raise DependencyUnavailable(
            f"{action}: Redis is unavailable ({type(exc).__name__})", retry_after_s=retry_after_s
        ) from exc
    except redis.ResponseError as exc:  # e.g. OOM: maxmemory reached with noeviction
        log.warning("%s: Redis refused: %s", action, exc)
        raise DependencyUnavailable(
            f"{action}: Redis refused the command", retry_after_s=retry_after_s
        ) from exc


def redis_check(client: aioredis.Redis) -> Check:
    """A readiness check that passes while ``client`` (asyncio) gets an answer to PING."""

    async def check() -> str | None:
        try:
            await client.ping()
        except redis.RedisError as exc:
            return f"Redis: {type(exc).__name__}: {exc}"
        return None

    return check
