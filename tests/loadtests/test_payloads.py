"""Iris and item-id payloads: determinism, shape, the repeat pool, the skew."""

from collections import Counter

import orjson
import pytest

from loadtests.payloads import IRIS_CLASSES, IRIS_FEATURES, IRIS_ROWS, IrisPayloads, ItemIdPayloads


def _bodies(generator: IrisPayloads, count: int) -> list[bytes]:
    return [generator.next_body() for _ in range(count)]


def test_table_has_ten_rows_per_class() -> None:
    assert len(IRIS_FEATURES) == 4
    for species in IRIS_CLASSES:
        assert sum(row.species == species for row in IRIS_ROWS) == 10
    assert all(len(row.features) == 4 for row in IRIS_ROWS)


@pytest.mark.parametrize("batch_size", [1, 3, 32])
def test_body_shape(batch_size: int) -> None:
    generator = IrisPayloads(seed=1, batch_size=batch_size)
    for _ in range(50):
        body = generator.next()
        assert list(body) == ["instances"]
        assert len(body["instances"]) == batch_size
        for instance in body["instances"]:
            assert len(instance) == 4
            assert all(isinstance(v, float) and v >= 0.1 and round(v, 1) == v for v in instance)


def test_values_stay_near_the_table() -> None:
    generator = IrisPayloads(seed=3, batch_size=1)
    for _ in range(200):
        (instance,) = generator.next()["instances"]
        nearest = min(
            max(abs(a - b) for a, b in zip(instance, row.features, strict=True))
            for row in IRIS_ROWS
        )
        assert nearest <= 0.25


def test_same_seed_same_sequence_and_other_seed_differs() -> None:
    first = _bodies(IrisPayloads(seed=42, batch_size=2), 100)
    assert first == _bodies(IrisPayloads(seed=42, batch_size=2), 100)
    assert first != _bodies(IrisPayloads(seed=43, batch_size=2), 100)


def test_next_and_next_body_follow_the_same_stream() -> None:
    as_dicts = IrisPayloads(seed=7, batch_size=2, repeat_share=0.5)
    as_bytes = IrisPayloads(seed=7, batch_size=2, repeat_share=0.5)
    for _ in range(100):
        assert orjson.dumps(as_dicts.next()) == as_bytes.next_body()


def test_no_repeat_share_means_no_pool() -> None:
    generator = IrisPayloads(seed=5, batch_size=4)
    assert generator.pool == ()
    bodies = _bodies(generator, 500)
    assert len(set(bodies)) == len(bodies)


def test_full_repeat_share_only_uses_the_pool() -> None:
    generator = IrisPayloads(seed=5, batch_size=2, repeat_share=1.0, pool_size=8)
    pool = {orjson.dumps(body) for body in generator.pool}
    assert len(pool) == 8
    bodies = _bodies(generator, 500)
    assert set(bodies) == pool


def test_partial_repeat_share_is_respected() -> None:
    generator = IrisPayloads(seed=11, batch_size=4, repeat_share=0.3)
    pool = {orjson.dumps(body) for body in generator.pool}
    bodies = _bodies(generator, 4000)
    share = sum(body in pool for body in bodies) / len(bodies)
    assert 0.27 < share < 0.33


def test_users_with_one_pool_seed_share_the_pool() -> None:
    one = IrisPayloads(seed=1, batch_size=1, repeat_share=0.2, pool_seed=42)
    two = IrisPayloads(seed=2, batch_size=1, repeat_share=0.2, pool_seed=42)
    assert one.pool == two.pool
    assert _bodies(one, 50) != _bodies(two, 50)


@pytest.mark.parametrize(
    "kwargs",
    [{"batch_size": 0}, {"repeat_share": -0.1}, {"repeat_share": 1.5}, {"pool_size": 0}],
)
def test_bad_arguments_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        IrisPayloads(seed=1, **kwargs)


def test_more_decimals_make_fresh_rows_practically_unique() -> None:
    coarse = IrisPayloads(seed=9, batch_size=1)
    fine = IrisPayloads(seed=9, batch_size=1, decimals=3)
    coarse_rows = {tuple(coarse.next()["instances"][0]) for _ in range(20_000)}
    fine_rows = [tuple(fine.next()["instances"][0]) for _ in range(20_000)]
    assert len(coarse_rows) < 15_000  # 1 decimal: many rows drawn again by chance
    assert len(set(fine_rows)) == len(fine_rows)
    assert all(round(v, 3) == v for row in fine_rows for v in row)


def test_item_ids_are_skewed_the_same_way_for_every_user() -> None:
    first, second = ItemIdPayloads(seed=1, pool_seed=42), ItemIdPayloads(seed=2, pool_seed=42)
    draws = [Counter(g.next()["ids"][0] for _ in range(20000)) for g in (first, second)]
    assert all(0 <= i < 1797 for counts in draws for i in counts)
    top = [{i for i, _ in counts.most_common(5)} for counts in draws]
    assert top[0] == top[1] == set(first.ranked[:5])  # one ranking for every user
    assert sum(n for _, n in draws[0].most_common(100)) / 20000 > 0.5  # Zipf s=1: 64 %
    assert ItemIdPayloads(seed=1, pool_seed=7).ranked != first.ranked


def test_item_id_bodies_are_deterministic_and_sized() -> None:
    bodies = [ItemIdPayloads(seed=5, batch_size=3, items=10).next_body() for _ in range(2)]
    assert bodies[0] == bodies[1]
    ids = orjson.loads(bodies[0])["ids"]
    assert len(ids) == 3
    assert all(0 <= i < 10 for i in ids)
    uniform = ItemIdPayloads(seed=5, items=4, zipf_s=0)
    assert uniform.cum_weights == [1.0, 2.0, 3.0, 4.0]
    with pytest.raises(ValueError, match="zipf_s"):
        ItemIdPayloads(seed=5, zipf_s=-1)
