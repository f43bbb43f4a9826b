"""A read-through cache in Redis that never stands between a request and its answer.

:class:`ReadThroughCache` answers ``get_or_compute(key, compute)``:

* **hit**: Redis has the value; one round trip, nothing computed.
* **miss**: nobody has it; ``compute()`` runs once and its value is stored with
  a TTL (``CACHE_TTL_S``).
* **coalesced**: another request was already computing the same key, in this
  process (single flight: one lookup or computation in flight per key, which
  the others join) or in another replica (a short Redis lock per key,
  ``CACHE_LOCK_TTL_S``); this one waited for that value instead of computing
  it again. A stampede of N concurrent misses on one key costs one
  computation, not N. (Joining a lookup that hits counts as a hit.)
* **bypass**: Redis failed or did not answer within ``CACHE_TIMEOUT_S``; the
  value is computed without Redis (single flight still applies). After a
  failure every request skips Redis for ``CACHE_RETRY_S``, so a Redis that is
  down or hung costs one short timeout per retry period, not one per request;
  the switch to and from bypass is logged.

Lookup and lock take one round trip (a Lua script: GET, else SET NX PX of the
lock); storing the value and releasing the lock take another. Values are bytes:
the caller decides what to keep (the prediction-cache api keeps the JSON answer).

Prediction keys come from :func:`prediction_key`: model name, version and sha256 prefix,
then the sha256 of the input rows as the model sees them (see :func:`rows_digest`).

Metrics: ``mlsp_cache_requests_total{cache,result}``, ``mlsp_cache_hit_ratio{cache}``
(hits over all requests since start), ``mlsp_cache_errors_total{cache,operation}``,
``mlsp_cache_available{cache}``, and the ``cache_lookup`` stage.
"""

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np
import redis.asyncio as redis
from prometheus_client import Counter, Gauge
from pydantic import Field
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from shared.kit.metrics import stage
from shared.kit.settings import _EnvSettings
from shared.model.metadata import ModelMetadata

log = logging.getLogger("shared.stores.cache")

RESULTS = ("hit", "miss", "coalesced", "bypass")
CACHE_REQUESTS = Counter(
    "mlsp_cache_requests",
    "Requests through a cache, by result: hit, miss (computed here), coalesced (waited for "
    "another request's computation), bypass (Redis down or slow: computed without it).",
    ["cache", "result"],
)
CACHE_HIT_RATIO = Gauge(
    "mlsp_cache_hit_ratio", "Share of a cache's requests answered by Redis since start.", ["cache"]
)
CACHE_ERRORS = Counter(
    "mlsp_cache_errors",
    "Redis calls that failed or timed out, by operation.",
    ["cache", "operation"],
)
CACHE_AVAILABLE = Gauge(
    "mlsp_cache_available", "1 while a cache uses Redis, 0 while requests bypass it.", ["cache"]
)

# What a failing or hung Redis raises: the client's errors, socket errors, our deadline.
REDIS_FAILURES = (RedisError, OSError, TimeoutError)

# KEYS: value, lock. ARGV: token, lock TTL (ms). {1, value}: hit; {2}: locked for us; {3}: busy.
LOOKUP_OR_LOCK = """
local value = redis.call('GET', KEYS[1])
if value then return {1, value} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2} end
return {3}
"""
# KEYS: value, lock. ARGV: value, TTL (ms), token. Stores, then drops the lock if still ours.
STORE_AND_UNLOCK = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
return 1
"""
# KEYS: lock. ARGV: token. Drops the lock if still ours (the computation failed).
UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_BUSY = 3  # LOOKUP_OR_LOCK's answer when another holds the lock
_POLL_FIRST_S, _POLL_MAX_S = 0.002, 0.025


class CacheSettings(_EnvSettings):
    """Where Redis is, how long answers live, and how little to wait for Redis."""

    redis_url: str = Field(
        description="redis://[:password@]host:port/db, e.g. redis://:secret@redis:6379/0."
    )
    cache_ttl_s: float = Field(3600, gt=0, description="How long a stored value lives.")
    cache_timeout_s: float = Field(
        0.25, gt=0, description="Deadline of one Redis call; past it the request bypasses Redis."
    )
    cache_retry_s: float = Field(
        1.0, ge=0, description="After a Redis failure, requests bypass Redis this long."
    )
    cache_lock_ttl_s: float = Field(
        2.0, gt=0, description="Life of a key's computing lock: longer than one computation."
    )
    cache_max_connections: int = Field(64, ge=1, description="Redis connections per process.")


def rows_digest(rows: np.ndarray) -> str:
    """sha256 of rows as the model sees them: shape, then little-endian float32 bytes.

    Decoding to float32 first makes equal inputs written differently equal:
    ``1``, ``1.0`` and ``1e0`` are the same float32, objects keyed by feature
    name were already put in feature order, and adding ``0.0`` turns ``-0.0``
    into ``0.0``. Two inputs share a digest exactly when the model gets the same
    tensor, so they would get the same answer.
    """
    canonical = np.ascontiguousarray(rows, dtype="<f4") + np.float32(0.0)
    digest = hashlib.sha256(repr(canonical.shape).encode())
    digest.update(canonical.tobytes())
    return digest.hexdigest()


def prediction_key(metadata: ModelMetadata, rows: np.ndarray) -> str:
    """The cache key of a model's answer to ``rows``.

    Name, version and the model file's sha256 prefix come first, so a new
    version (or a re-export under the same version) never meets old answers.
    """
    model = f"{metadata.name}:{metadata.version}:{metadata.sha256[:12]}"
    return f"mlsp:prediction:{model}:{rows_digest(rows)}"


def connect(settings: CacheSettings) -> redis.Redis:
    """An asyncio Redis client that gives up fast: no retries, short socket timeouts."""
    pool = redis.BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.cache_max_connections,
        timeout=settings.cache_timeout_s,  # waiting for a free connection
        socket_timeout=settings.cache_timeout_s,
        socket_connect_timeout=settings.cache_timeout_s,
        retry=Retry(NoBackoff(), 0),
    )
    return redis.Redis.from_pool(pool)


@dataclass(frozen=True)
class Cached:
    """A value and how it was obtained: ``hit``, ``miss``, ``coalesced`` or ``bypass``."""

    value: bytes
    result: str


@dataclass
class _Flight:
    """One computation in progress in this process, awaited by its followers."""

    done: asyncio.Event = field(default_factory=asyncio.Event)
    value: bytes | None = None
    result: str = ""
    error: BaseException | None = None


class ReadThroughCache:
    """Values in Redis by key, computed once on a miss, never blocked by Redis (see module)."""

    def __init__(self, client: redis.Redis, settings: CacheSettings, name: str = "predictions"):
        self.client = client
        self.name = name
        self.ttl_ms = int(settings.cache_ttl_s * 1000)
        self.lock_ttl_ms = int(settings.cache_lock_ttl_s * 1000)
        self.timeout_s = settings.cache_timeout_s
        self.retry_s = settings.cache_retry_s
        self._lookup = client.register_script(LOOKUP_OR_LOCK)
        self._store = client.register_script(STORE_AND_UNLOCK)
        self._unlock = client.register_script(UNLOCK)
        self._flights: dict[str, _Flight] = {}
        self._bypass_until = 0.0
        self._degraded = False
        self._counts = dict.fromkeys(RESULTS, 0)
        self._requests = {result: CACHE_REQUESTS.labels(name, result) for result in RESULTS}
        CACHE_HIT_RATIO.labels(name).set_function(self.hit_ratio)
        CACHE_AVAILABLE.labels(name).set(1)

    @classmethod
    def from_settings(
        cls, settings: CacheSettings, name: str = "predictions"
    ) -> "ReadThroughCache":
        """A cache on a new client made by :func:`connect`."""
        return cls(connect(settings), settings, name)

    async def close(self) -> None:
        """Close the client and its connections."""
        await self.client.aclose()

    async def warm_up(self, timeout_s: float = 5.0) -> None:
        """Connect and load the Lua scripts before the first request, so it need not.

        A first request would otherwise pay the connection, ``AUTH`` and the
        scripts' ``NOSCRIPT`` round trip inside its short deadline. Redis down or
        slow is logged and left to the first requests (they bypass it).
        """
        try:
            async with asyncio.timeout(timeout_s):
                for script in (self._lookup, self._store, self._unlock):
                    await self.client.script_load(script.script)
        except REDIS_FAILURES as exc:
            log.warning(
                "cache %s: Redis not reachable at start (%s); requests will bypass it until it is",
                self.name,
                type(exc).__name__,
            )

    def hit_ratio(self) -> float:
        """Share of requests answered by Redis since start (0 before any)."""
        total = sum(self._counts.values())
        return self._counts["hit"] / total if total else 0.0

    @property
    def bypassing(self) -> bool:
        """True while requests skip Redis after a failure."""
        return time.monotonic() < self._bypass_until

    async def get_or_compute(self, key: str, compute: Callable[[], Awaitable[bytes]]) -> Cached:
        """The value of ``key``: from Redis, from a computation in flight, or from ``compute()``.

        Errors of ``compute()`` reach the caller (and every request waiting on
        the same computation); nothing is stored then.
        """
        flight = self._flights.get(key)
        if flight is not None:
            await flight.done.wait()
            if flight.error is not None:
                raise flight.error
            if flight.value is None:  # the leader was cancelled: lead this time
                return await self.get_or_compute(key, compute)
            # Joining a lookup that hit is a hit; joining a computation is waiting for it.
            result = "hit" if flight.result == "hit" else "coalesced"
            return self._count(Cached(flight.value, result))
        flight = self._flights[key] = _Flight()
        try:
            cached = await self._lead(key, compute)
            flight.value, flight.result = cached.value, cached.result
        except Exception as exc:
            flight.error = exc
            raise
        finally:
            del self._flights[key]
            flight.done.set()
        return self._count(cached)

    async def _lead(self, key: str, compute: Callable[[], Awaitable[bytes]]) -> Cached:
        if self.bypassing:
            return Cached(await compute(), "bypass")
        token = secrets.token_hex(8)
        lock = f"{key}:lock"
        try:
            with stage("cache_lookup"):
                state, value = await self._lookup_or_lock(key, lock, token)
            if value is not None:
                return Cached(value, "hit")
            if state == _BUSY:  # another replica computes it: wait for its value
                value = await self._wait_for_other(key, lock, token)
                if value is not None:
                    return Cached(value, "coalesced")
        except REDIS_FAILURES as exc:
            self._failed("lookup", exc)
            return Cached(await compute(), "bypass")
        # Locked for us, or the other replica's lock outlived its owner: compute here.
        try:
            value = await compute()
        except Exception:  # let others compute at once (a cancelled task's lock just expires)
            await self._call("unlock", self._unlock(keys=[lock], args=[token]))
            raise
        await self._call("store", self._store(keys=[key, lock], args=[value, self.ttl_ms, token]))
        return Cached(value, "miss")

    async def _wait_for_other(self, key: str, lock: str, token: str) -> bytes | None:
        """The value once it appears; None once the lock is ours or after one lock TTL."""
        deadline = time.monotonic() + self.lock_ttl_ms / 1000
        pause = _POLL_FIRST_S
        state, value = _BUSY, None
        while state == _BUSY and time.monotonic() < deadline:
            await asyncio.sleep(pause)
            pause = min(pause * 2, _POLL_MAX_S)
            state, value = await self._lookup_or_lock(key, lock, token)
        return value

    async def _lookup_or_lock(self, key: str, lock: str, token: str) -> tuple[int, bytes | None]:
        async with asyncio.timeout(self.timeout_s):
            answer = await self._lookup(keys=[key, lock], args=[token, self.lock_ttl_ms])
        self._recovered()
        return int(answer[0]), answer[1] if len(answer) > 1 else None  # (state, value of a hit)

    async def _call(self, operation: str, call: Awaitable[object]) -> None:
        """Run a Redis call whose failure only costs the cache, not the request."""
        try:
            async with asyncio.timeout(self.timeout_s):
                await call
        except REDIS_FAILURES as exc:
            self._failed(operation, exc)
        else:
            self._recovered()

    def _failed(self, operation: str, exc: BaseException) -> None:
        CACHE_ERRORS.labels(self.name, operation).inc()
        if not self.bypassing:
            log.warning(
                "cache %s: Redis %s failed (%s: %s); bypassing Redis for %g s",
                self.name,
                operation,
                type(exc).__name__,
                exc or "no answer in time",
                self.retry_s,
                extra={"cache": self.name, "operation": operation},
            )
        self._bypass_until = time.monotonic() + self.retry_s
        self._degraded = True
        CACHE_AVAILABLE.labels(self.name).set(0)

    def _recovered(self) -> None:
        if self._degraded:
            self._degraded = False
            CACHE_AVAILABLE.labels(self.name).set(1)
            log.info("cache %s: Redis answers again; cache in use", self.name)

    def _count(self, cached: Cached) -> Cached:
        self._counts[cached.result] += 1
        self._requests[cached.result].inc()
        return cached
