"""The split in process: who gets which variant, the weights' rules, and the store in Redis."""

import asyncio
import random
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError
from redis import asyncio as aioredis

from conftest import import_file
from shared.kit.errors import InvalidInput

# Under the name the api imports it by, so that its metrics are registered once a session.
SPLIT = Path(__file__).resolve().parents[1] / "api" / "split.py"
split = sys.modules.get("split") or import_file(SPLIT, "split")
sys.modules["split"] = split
WEIGHTS_KEY, Weights, WeightStore = split.WEIGHTS_KEY, split.Weights, split.WeightStore
bucket, variant_for = split.bucket, split.variant_for
NINETY_TEN = Weights(primary=90, canary=10)


def test_a_client_key_always_gets_the_same_variant() -> None:
    for key in ("alice", "bob", "42", "ü-user"):
        assert len({variant_for(NINETY_TEN, key) for _ in range(20)}) == 1
    assert bucket("alice") == bucket("alice")  # blake2b: not Python's per-process hash()


def test_clients_are_split_by_the_weights() -> None:
    keys = [f"client-{i}" for i in range(4000)]
    canary = sum(variant_for(NINETY_TEN, key) == "canary" for key in keys)
    assert 0.08 < canary / len(keys) < 0.12


def test_raising_the_canarys_weight_only_moves_clients_to_it() -> None:
    keys = [f"client-{i}" for i in range(500)]
    before = {k for k in keys if variant_for(NINETY_TEN, k) == "canary"}
    after = {k for k in keys if variant_for(Weights.canary_share(30), k) == "canary"}
    assert before < after


def test_without_a_key_the_pick_is_random_by_weight() -> None:
    rng = random.Random(7)
    picks = [variant_for(NINETY_TEN, None, rng.random) for _ in range(4000)]
    assert 0.08 < picks.count("canary") / len(picks) < 0.12
    assert variant_for(Weights(primary=0, canary=100), None) == "canary"
    assert variant_for(Weights(primary=100, canary=0), "anyone") == "primary"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"primary": -10, "canary": 110}, "primary"),
        ({"primary": 90, "canary": 10, "shadow": 0}, "shadow"),
        ({"primary": 90}, "canary"),
        ({"primary": 90, "canary": "ten"}, "canary"),
    ],
)
def test_bad_weights_are_refused_naming_the_field(body: dict, field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Weights.model_validate(body)
    assert refused.value.errors()[0]["loc"][0] == field


def test_weights_must_sum_to_100() -> None:
    with pytest.raises(InvalidInput, match="must be 100, not 60 \\+ 50 = 110") as refused:
        Weights(primary=60, canary=50).check_sum()
    assert refused.value.field == "primary+canary"
    assert Weights(primary=55, canary=45).check_sum().canary == 45


def test_the_store_reads_redis_and_keeps_the_last_weights_when_it_fails(redis_url: str) -> None:
    async def scenario() -> None:
        store = WeightStore(aioredis.Redis.from_url(redis_url), NINETY_TEN)
        await store.refresh()
        assert (store.weights, store.source) == (NINETY_TEN, "default")  # nothing stored yet
        await store.client.set(WEIGHTS_KEY, '{"primary": 70, "canary": 30}')
        await store.refresh()
        assert (store.weights.canary, store.source) == (30, "redis")
        for unreadable in ('{"primary": 70, "canary": 70}', "not json"):
            await store.client.set(WEIGHTS_KEY, unreadable)
            await store.refresh()
            assert (store.weights.canary, store.source) == (30, "last known")
            assert store.problem
        await store.save(Weights(primary=0, canary=100))
        assert store.weights.canary == 100
        await store.client.aclose()
        store.client = aioredis.Redis.from_url("redis://127.0.0.1:1", socket_connect_timeout=0.2)
        await store.refresh()  # Redis unreachable
        assert (store.weights.canary, store.source) == (100, "last known")
        assert "ConnectionError" in (store.problem or "")
        await store.client.aclose()

    asyncio.run(scenario())
