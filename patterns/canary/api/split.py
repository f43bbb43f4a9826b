"""How the canary api splits traffic: the weights, where they live, and who gets which variant.

* :class:`Weights`: the percent of requests each variant gets; they sum to 100.
* :func:`variant_for`: the variant of one request. A client key (the ``X-Client-Id``
  header) is hashed to a bucket 0..99 (blake2b, so every process, replica and restart
  agrees): buckets below the primary's weight get the primary, the others the canary.
  Raising the canary's weight only moves clients from the primary to the canary, never
  back. Without a key, a random pick by weight.
* :class:`WeightStore`: the weights are kept in Redis, so every api process and replica
  splits alike and a change needs no restart. Each process re-reads them every
  ``refresh_s`` in the background (``redis.asyncio``: no request waits for Redis); while
  Redis is down or holds something unreadable it keeps the last weights it read.
"""

import asyncio
import hashlib
import logging
import random
import time
from collections.abc import Callable

import redis
from prometheus_client import Gauge
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from redis import asyncio as aioredis

from shared.kit.errors import InvalidInput

log = logging.getLogger("canary.split")

VARIANTS = ("primary", "canary")
#: The Redis key of the weights (JSON: ``{"primary": 90, "canary": 10}``).
WEIGHTS_KEY = "mlsp:canary:weights"

WEIGHT = Gauge(
    "mlsp_canary_weight",
    "Percent of requests the split gives each variant now.",
    ["variant"],
    multiprocess_mode="mostrecent",  # every process reads the same weights: the latest wins
)


class Weights(BaseModel):
    """Percent of requests per variant: whole numbers 0..100 that sum to 100."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    primary: int = Field(ge=0, le=100, description="Percent of requests for the primary.")
    canary: int = Field(ge=0, le=100, description="Percent of requests for the canary.")

    def check_sum(self) -> "Weights":
        """Raise :class:`InvalidInput` (422) unless the weights sum to 100."""
        total = self.primary + self.canary
        if total != 100:
            raise InvalidInput(
                f"primary + canary must be 100, not {self.primary} + {self.canary} = {total}",
                field="primary+canary",
            )
        return self

    @classmethod
    def canary_share(cls, canary: int) -> "Weights":
        """``canary`` percent to the canary, the rest to the primary."""
        return cls(primary=100 - canary, canary=canary)


def bucket(client_key: str) -> int:
    """The client's bucket 0..99: a stable hash of its key (the same in every process)."""
    digest = hashlib.blake2b(client_key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 100


def variant_for(
    weights: Weights, client_key: str | None, draw: Callable[[], float] = random.random
) -> str:
    """The variant of a request: by the client key's bucket when there is a key (sticky
    while the weights stand), else by a random ``draw`` in [0, 1)."""
    point = bucket(client_key) if client_key else draw() * 100
    return "primary" if point < weights.primary else "canary"


class WeightStore:
    """The weights in Redis, as this process last read them (``initial`` until it has)."""

    def __init__(self, client: aioredis.Redis, initial: Weights, refresh_s: float = 1.0) -> None:
        self.client = client
        self.weights = initial
        self.refresh_s = refresh_s
        self.source = "default"  # "default", "redis", or "last known" while Redis fails
        self.read_at: float | None = None  # time.time() of the last good read
        self.problem: str | None = None  # why the last read failed
        self._show()

    def _show(self) -> None:
        for variant in VARIANTS:
            WEIGHT.labels(variant).set(getattr(self.weights, variant))

    async def refresh(self) -> None:
        """Read the weights once; on any failure keep the ones in hand (and say why)."""
        try:
            raw = await self.client.get(WEIGHTS_KEY)
            if raw is not None:
                self.weights = Weights.model_validate_json(raw).check_sum()
                self.source = "redis"
            elif self.source != "default":
                self.source = "last known"  # deleted by hand: keep what was served
            self.read_at = time.time()
            if self.problem is not None:
                log.info("weights readable again: %s", self.weights.model_dump())
            self.problem = None
        except (redis.RedisError, OSError, ValidationError, InvalidInput) as exc:
            problem = f"{type(exc).__name__}: {exc}"[:200]
            if self.problem is None:
                log.warning("keeping weights %s: %s", self.weights.model_dump(), problem)
            self.problem = problem
            if self.source == "redis":
                self.source = "last known"
        self._show()

    async def save(self, weights: Weights) -> None:
        """Store new weights for every process (this one uses them at once).

        Raises :class:`redis.RedisError` when Redis cannot take them: nothing changes."""
        await self.client.set(WEIGHTS_KEY, weights.model_dump_json())
        self.weights = weights
        self.source = "redis"
        self.read_at = time.time()
        self._show()

    async def keep_fresh(self) -> None:
        """Re-read the weights every ``refresh_s`` until cancelled (a background task)."""
        while True:
            await self.refresh()
            await asyncio.sleep(self.refresh_s)

    def state(self) -> dict[str, object]:
        """What ``GET /canary`` says about the weights."""
        return {
            "weights": self.weights.model_dump(),
            "source": self.source,
            "read_at": self.read_at,
            "problem": self.problem,
        }
