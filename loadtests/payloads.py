"""Deterministic request bodies for the load tests.

Every generator draws from its own seeded :class:`random.Random`, so the same
seed always yields the same sequence of bodies. ``repeat_share`` makes that
fraction of requests reuse a body from a small fixed pool (seeded by
``pool_seed``), so a prediction cache has something to hit; give every user
the same ``pool_seed`` and different ``seed`` values.

To add inputs for another pattern (digits images, item ids, ...), subclass
:class:`PayloadGenerator` and implement :meth:`PayloadGenerator._make`.
"""

from __future__ import annotations

import itertools
import random
from typing import Any, NamedTuple

import orjson

__all__ = [
    "IRIS_CLASSES",
    "IRIS_FEATURES",
    "IRIS_ROWS",
    "IrisPayloads",
    "IrisRow",
    "ItemIdPayloads",
    "PayloadGenerator",
]

IRIS_FEATURES: tuple[str, ...] = ("sepal_length", "sepal_width", "petal_length", "petal_width")
IRIS_CLASSES: tuple[str, ...] = ("setosa", "versicolor", "virginica")


class IrisRow(NamedTuple):
    """One iris flower: four measurements in cm and its species."""

    sepal_length: float
    sepal_width: float
    petal_length: float
    petal_width: float
    species: str

    @property
    def features(self) -> tuple[float, float, float, float]:
        """The four measurements, in :data:`IRIS_FEATURES` order."""
        return (self.sepal_length, self.sepal_width, self.petal_length, self.petal_width)


# Rows 1-10, 51-60 and 101-110 of Fisher's iris data set.
IRIS_ROWS: tuple[IrisRow, ...] = (
    IrisRow(5.1, 3.5, 1.4, 0.2, "setosa"),
    IrisRow(4.9, 3.0, 1.4, 0.2, "setosa"),
    IrisRow(4.7, 3.2, 1.3, 0.2, "setosa"),
    IrisRow(4.6, 3.1, 1.5, 0.2, "setosa"),
    IrisRow(5.0, 3.6, 1.4, 0.2, "setosa"),
    IrisRow(5.4, 3.9, 1.7, 0.4, "setosa"),
    IrisRow(4.6, 3.4, 1.4, 0.3, "setosa"),
    IrisRow(5.0, 3.4, 1.5, 0.2, "setosa"),
    IrisRow(4.4, 2.9, 1.4, 0.2, "setosa"),
    IrisRow(4.9, 3.1, 1.5, 0.1, "setosa"),
    IrisRow(7.0, 3.2, 4.7, 1.4, "versicolor"),
    IrisRow(6.4, 3.2, 4.5, 1.5, "versicolor"),
    IrisRow(6.9, 3.1, 4.9, 1.5, "versicolor"),
    IrisRow(5.5, 2.3, 4.0, 1.3, "versicolor"),
    IrisRow(6.5, 2.8, 4.6, 1.5, "versicolor"),
    IrisRow(5.7, 2.8, 4.5, 1.3, "versicolor"),
    IrisRow(6.3, 3.3, 4.7, 1.6, "versicolor"),
    IrisRow(4.9, 2.4, 3.3, 1.0, "versicolor"),
    IrisRow(6.6, 2.9, 4.6, 1.3, "versicolor"),
    IrisRow(5.2, 2.7, 3.9, 1.4, "versicolor"),
    IrisRow(6.3, 3.3, 6.0, 2.5, "virginica"),
    IrisRow(5.8, 2.7, 5.1, 1.9, "virginica"),
    IrisRow(7.1, 3.0, 5.9, 2.1, "virginica"),
    IrisRow(6.3, 2.9, 5.6, 1.8, "virginica"),
    IrisRow(6.5, 3.0, 5.8, 2.2, "virginica"),
    IrisRow(7.6, 3.0, 6.6, 2.1, "virginica"),
    IrisRow(4.9, 2.5, 4.5, 1.7, "virginica"),
    IrisRow(7.3, 2.9, 6.3, 1.8, "virginica"),
    IrisRow(6.7, 2.5, 5.8, 1.8, "virginica"),
    IrisRow(7.2, 3.6, 6.1, 2.5, "virginica"),
)


class PayloadGenerator:
    """Base class: a seeded stream of request bodies with optional repeats.

    Subclasses implement :meth:`_make`. :meth:`next` and :meth:`next_body`
    consume the random stream identically, so for one seed
    ``next_body()`` is always ``orjson.dumps(next())``.
    """

    def __init__(
        self,
        seed: int,
        *,
        repeat_share: float = 0.0,
        pool_size: int = 16,
        pool_seed: int | None = None,
    ) -> None:
        if not 0.0 <= repeat_share <= 1.0:
            raise ValueError(f"repeat_share must be between 0 and 1, got {repeat_share}")
        if pool_size < 1:
            raise ValueError(f"pool_size must be at least 1, got {pool_size}")
        self.repeat_share = repeat_share
        self._rng = random.Random(seed)
        self._pool: list[dict[str, Any]] = []
        if repeat_share > 0.0:
            pool_rng = random.Random(f"pool-{seed if pool_seed is None else pool_seed}")
            self._pool = [self._make(pool_rng) for _ in range(pool_size)]
        self._pool_bodies = [orjson.dumps(body) for body in self._pool]

    @property
    def pool(self) -> tuple[dict[str, Any], ...]:
        """The bodies that repeated requests are drawn from (empty if ``repeat_share`` is 0)."""
        return tuple(self._pool)

    def next(self) -> dict[str, Any]:
        """The next request body as a dict (pool bodies are shared: do not mutate)."""
        index = self._pick_repeat()
        return self._make(self._rng) if index is None else self._pool[index]

    def next_body(self) -> bytes:
        """The next request body serialised as JSON (the cheap path for Locust tasks)."""
        index = self._pick_repeat()
        return orjson.dumps(self._make(self._rng)) if index is None else self._pool_bodies[index]

    def _pick_repeat(self) -> int | None:
        if self._pool and self._rng.random() < self.repeat_share:
            return self._rng.randrange(len(self._pool))
        return None

    def _make(self, rng: random.Random) -> dict[str, Any]:
        """Build one fresh body from ``rng``."""
        raise NotImplementedError


class IrisPayloads(PayloadGenerator):
    """``{"instances": [[f1, f2, f3, f4], ...]}`` bodies of ``batch_size`` iris rows.

    Each instance is a row of :data:`IRIS_ROWS` with uniform jitter of at most
    ``jitter`` cm per feature, rounded to ``decimals`` decimals (1, like the
    data set, by default) and kept at least 0.1. With 1 decimal there are about
    19k distinct rows, so a long run draws some again by chance; 3 decimals
    make every fresh row practically new (what a cache test wants).
    """

    def __init__(
        self,
        seed: int,
        batch_size: int = 1,
        *,
        repeat_share: float = 0.0,
        pool_size: int = 16,
        pool_seed: int | None = None,
        jitter: float = 0.2,
        decimals: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = batch_size
        self.jitter = jitter
        self.decimals = decimals
        super().__init__(seed, repeat_share=repeat_share, pool_size=pool_size, pool_seed=pool_seed)

    def _make(self, rng: random.Random) -> dict[str, Any]:
        rows = IRIS_ROWS
        jitter, decimals = self.jitter, self.decimals
        instances = []
        for _ in range(self.batch_size):
            row = rows[rng.randrange(len(rows))]
            instances.append(
                [
                    max(0.1, round(value + rng.uniform(-jitter, jitter), decimals))
                    for value in row.features
                ]
            )
        return {"instances": instances}


class ItemIdPayloads(PayloadGenerator):
    """``{"ids": [...]}`` bodies of ``batch_size`` item ids, drawn with Zipf-like popularity.

    Ids ``0 .. items-1`` are ranked in an order shuffled by ``pool_seed`` (the
    same for every user, so that all users favour the same items, as real
    traffic does); the item of rank ``k`` (1-based) is drawn with weight
    ``1 / k**zipf_s``. With ``zipf_s=1`` over 1797 items the top 10 take 36 %
    of the requests and the top 100 64 %; ``zipf_s=0`` is uniform.
    """

    def __init__(
        self,
        seed: int,
        batch_size: int = 1,
        *,
        items: int = 1797,
        zipf_s: float = 1.0,
        pool_seed: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if items < 1 or zipf_s < 0:
            raise ValueError(f"need items >= 1 and zipf_s >= 0, got {items} and {zipf_s}")
        self.batch_size = batch_size
        self.ranked = list(range(items))
        random.Random(f"ranks-{seed if pool_seed is None else pool_seed}").shuffle(self.ranked)
        self.cum_weights = list(itertools.accumulate(1 / k**zipf_s for k in range(1, items + 1)))
        super().__init__(seed)

    def _make(self, rng: random.Random) -> dict[str, Any]:
        ids = rng.choices(self.ranked, cum_weights=self.cum_weights, k=self.batch_size)
        return {"ids": ids}
