"""data-cache's api in-process, against a real PostgreSQL (seeded) and a real redis-server."""

import asyncio
import itertools
import re
from collections.abc import Callable, Iterator
from types import ModuleType

import httpx
import psycopg
import pytest
import redis
from fastapi.testclient import TestClient

from conftest import _free_port
from shared.mechanisms import digit_images
from tests.api_fuzz import assert_no_server_errors
from tests.metrics_text import MetricsChange, sample_total

SEEDED = 60  # items 0..59 are in the test database
TTL_S = 600


@pytest.fixture
def seed_module(load_service: Callable[..., ModuleType]) -> ModuleType:
    return load_service("data-cache", "seed")


@pytest.fixture
def seeded_url(seed_module: ModuleType, postgres_url: str) -> str:
    """A database holding the first :data:`SEEDED` digits, as the seed service writes them."""
    with psycopg.connect(postgres_url) as connection:
        seed_module.seed(connection, itertools.islice(seed_module.digit_items(), SEEDED))
    return postgres_url


def load_api(load_service: Callable[..., ModuleType], **env: str) -> ModuleType:
    """The api module with ``env`` as its settings (the digits model)."""
    return load_service(
        "data-cache", "api", MODEL_NAME="digits", CACHE_TTL_S=str(TTL_S), CACHE_RETRY_S="5", **env
    )


@pytest.fixture(params=["raw", "tensor"])
def variant(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def api(
    load_service: Callable[..., ModuleType], seeded_url: str, redis_url: str, variant: str
) -> ModuleType:
    return load_api(
        load_service, DATABASE_URL=seeded_url, REDIS_URL=redis_url, CACHE_VARIANT=variant
    )


@pytest.fixture
def client(api: ModuleType) -> Iterator[TestClient]:
    with TestClient(api.app) as client:
        yield client


def count_in(metrics: str, name: str) -> float:
    """How many times stage ``name`` ran, from /metrics text (the registry is per process)."""
    found = re.search(
        rf'^mlsp_stage_duration_seconds_count\{{stage="{name}"\}} (\S+)$', metrics, re.MULTILINE
    )
    return float(found.group(1)) if found else 0.0


def stage_count(client: TestClient, name: str) -> float:
    return count_in(client.get("/metrics").text, name)


def test_a_miss_then_a_hit_with_the_same_answer(client: TestClient, variant: str) -> None:
    miss, hit = (client.post("/predict", json={"ids": [7]}) for _ in range(2))
    assert (miss.status_code, hit.status_code) == (200, 200)
    assert (miss.headers["x-cache"], hit.headers["x-cache"]) == ("miss", "hit")
    assert miss.content == hit.content
    answer = hit.json()
    assert (answer["model_name"], answer["model_version"]) == ("digits", "1")
    (prediction,) = answer["predictions"]
    assert prediction["id"] == 7
    assert set(prediction["probabilities"]) == {str(d) for d in range(10)}


def test_each_id_gets_its_own_answer_and_cache_result_in_order(client: TestClient) -> None:
    client.post("/predict", json={"ids": [3]})
    answer = client.post("/predict", json={"ids": [3, 4, 3]})
    assert answer.status_code == 200
    assert [p["id"] for p in answer.json()["predictions"]] == [3, 4, 3]
    results = answer.headers["x-cache"].split(", ")
    assert results[:2] == ["hit", "miss"]
    assert results[2] == "hit"  # the repeated id joins the first one's lookup, which hit


def test_the_model_reads_the_stored_digits_right(
    client: TestClient, seed_module: ModuleType
) -> None:
    truth = [label for _, _, label in itertools.islice(seed_module.digit_items(), SEEDED)]
    answer = client.post("/predict", json={"ids": list(range(SEEDED))}).json()
    right = sum(p["label"] == label for p, label in zip(answer["predictions"], truth, strict=True))
    assert right >= 0.9 * SEEDED


def test_what_redis_keeps_is_the_variants_value_with_the_ttl(
    api: ModuleType, client: TestClient, redis_url: str, seeded_url: str, variant: str
) -> None:
    client.post("/predict", json={"ids": [11]})
    store = redis.Redis.from_url(redis_url)
    with psycopg.connect(seeded_url) as connection:
        (image,) = connection.execute("SELECT image FROM items WHERE id = 11").fetchone()
    if variant == "raw":
        key, expected = api.raw_key(11), image
    else:
        key, expected = (
            api.tensor_key(11),
            digit_images.image_to_digits(image)[0].astype("<f4").tobytes(),
        )
    assert store.get(key) == expected
    assert 0 < store.pttl(key) <= TTL_S * 1000


def test_a_hit_skips_the_database_and_in_the_tensor_variant_the_preprocessing(
    client: TestClient, variant: str
) -> None:
    client.post("/predict", json={"ids": [21]})
    before = {name: stage_count(client, name) for name in ("db_fetch", "preprocess", "inference")}
    assert client.post("/predict", json={"ids": [21]}).headers["x-cache"] == "hit"
    after = {name: stage_count(client, name) for name in before}
    assert after["db_fetch"] == before["db_fetch"]
    assert after["inference"] == before["inference"] + 1
    skipped_prep = after["preprocess"] == before["preprocess"]
    assert skipped_prep == (variant == "tensor")


def test_unknown_ids_are_404_naming_the_id_and_not_cached(
    client: TestClient, redis_url: str
) -> None:
    for _ in range(2):
        answer = client.post("/predict", json={"ids": [1, 5000]})
        assert answer.status_code == 404
        error = answer.json()["error"]
        assert (error["code"], error["field"]) == ("not_found", "ids[1]")
        assert "5000" in error["message"]
    assert redis.Redis.from_url(redis_url).keys("mlsp:item:*5000") == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"", "body"),
        (b"[1, 2]", "ids"),
        (b'{"ids": []}', "ids"),
        (b'{"ids": 3}', "ids"),
        (b'{"ids": [1, "2"]}', "ids[1]"),
        (b'{"ids": [1.5]}', "ids[0]"),
        (b'{"ids": [true]}', "ids[0]"),
        (b'{"ids": [-1]}', "ids[0]"),
        (b'{"ids": [2147483648]}', "ids[0]"),
        (b'{"ids": [' + b"1, " * 100 + b"1]}", "ids"),
    ],
)
def test_bad_ids_are_422_naming_the_field(client: TestClient, body: bytes, field: str) -> None:
    answer = client.post("/predict", content=body)
    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == field
    assert "x-cache" not in answer.headers


def test_the_stored_image_is_served_as_png(client: TestClient, seed_module: ModuleType) -> None:
    _, png, label = next(itertools.islice(seed_module.digit_items(), 9, None))
    image = client.get("/items/9/image")
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    assert (image.content, image.headers["x-item-label"]) == (png, label)
    assert client.get("/items/4000/image").status_code == 404
    assert client.get("/items/nine/image").status_code == 422


def test_the_metrics_count_hits_and_misses_and_time_the_stages(
    client: TestClient, variant: str
) -> None:
    change = MetricsChange(lambda: client.get("/metrics").text)
    for _ in range(3):
        client.post("/predict", json={"ids": [30]})
    assert change.increase("mlsp_cache_requests_total", cache=variant, result="miss") == 1
    assert change.increase("mlsp_cache_requests_total", cache=variant, result="hit") == 2
    metrics = client.get("/metrics").text
    assert 0 < sample_total(metrics, "mlsp_cache_hit_ratio", cache=variant) <= 1
    assert sample_total(metrics, "mlsp_cache_available", cache=variant) == 1
    assert sample_total(metrics, "mlsp_model_info", model="digits", version="1") == 1
    for name in ("decode", "cache_lookup", "inference"):
        assert change.increase("mlsp_stage_duration_seconds_count", stage=name) == 3, name
    assert change.increase("mlsp_stage_duration_seconds_count", stage="db_fetch") == 1  # a miss
    preprocessed = 3 if variant == "raw" else 1  # the tensor variant caches its output
    assert change.increase("mlsp_stage_duration_seconds_count", stage="preprocess") == preprocessed


async def test_concurrent_misses_on_one_item_read_the_database_once(api: ModuleType) -> None:
    transport = httpx.ASGITransport(app=api.app)
    async with (
        api.app.router.lifespan_context(api.app),
        httpx.AsyncClient(transport=transport, base_url="http://api") as client,
    ):
        before = count_in((await client.get("/metrics")).text, "db_fetch")
        answers = await asyncio.gather(
            *(client.post("/predict", json={"ids": [44]}) for _ in range(20))
        )
        after = count_in((await client.get("/metrics")).text, "db_fetch")
    assert {a.status_code for a in answers} == {200}
    results = [a.headers["x-cache"] for a in answers]
    assert results.count("miss") == 1
    assert set(results) <= {"miss", "coalesced", "hit"}
    assert after == before + 1


def test_without_redis_the_api_answers_from_the_database_and_stays_ready(
    load_service: Callable[..., ModuleType], seeded_url: str, variant: str
) -> None:
    api = load_api(
        load_service,
        DATABASE_URL=seeded_url,
        REDIS_URL=f"redis://127.0.0.1:{_free_port()}/0",
        CACHE_VARIANT=variant,
    )
    with TestClient(api.app) as client:
        answers = [client.post("/predict", json={"ids": [2]}) for _ in range(2)]
        assert [a.status_code for a in answers] == [200, 200]
        assert [a.headers["x-cache"] for a in answers] == ["bypass", "bypass"]
        assert client.get("/health/ready").json() == {"status": "ready"}
        assert f'mlsp_cache_available{{cache="{variant}"}} 0.0' in client.get("/metrics").text


def test_without_the_database_hits_are_answered_and_misses_are_503(
    load_service: Callable[..., ModuleType], redis_url: str, seed_module: ModuleType
) -> None:
    api = load_api(
        load_service,
        DATABASE_URL=f"postgresql://nobody:x@127.0.0.1:{_free_port()}/none",
        POSTGRES_CONNECT_TIMEOUT_S="1",
        REDIS_URL=redis_url,
        CACHE_VARIANT="tensor",
    )
    _, png, _ = next(seed_module.digit_items())
    redis.Redis.from_url(redis_url).set(
        api.tensor_key(0), digit_images.image_to_digits(png)[0].astype("<f4").tobytes()
    )
    with TestClient(api.app) as client:
        hit = client.post("/predict", json={"ids": [0]})
        assert (hit.status_code, hit.headers["x-cache"]) == (200, "hit")
        miss = client.post("/predict", json={"ids": [1]})
        assert miss.status_code == 503
        assert "retry-after" in miss.headers
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert "PostgreSQL" in ready.json()["checks"]["postgres"]


def test_an_unseeded_database_is_not_ready(
    load_service: Callable[..., ModuleType],
    postgres_url: str,
    redis_url: str,
    seed_module: ModuleType,
) -> None:
    with psycopg.connect(postgres_url) as connection:
        seed_module.seed(connection, [])
    api = load_api(load_service, DATABASE_URL=postgres_url, REDIS_URL=redis_url)
    with TestClient(api.app) as client:
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert "empty" in ready.json()["checks"]["postgres"]


def test_the_tensor_keys_name_the_preprocessing(api: ModuleType) -> None:
    assert api.raw_key(5) == "mlsp:item:raw:5"
    assert re.fullmatch(r"mlsp:item:tensor:[0-9a-f]{12}:5", api.tensor_key(5))


def test_a_model_of_another_input_size_is_refused(
    load_service: Callable[..., ModuleType], seeded_url: str, redis_url: str
) -> None:
    api = load_service(
        "data-cache", "api", MODEL_NAME="iris", DATABASE_URL=seeded_url, REDIS_URL=redis_url
    )
    with pytest.raises(Exception, match="takes 4 values"), TestClient(api.app):
        pass


def test_the_tensor_of_a_stored_png_is_the_data_sets_digit(seed_module: ModuleType) -> None:
    from sklearn.datasets import load_digits  # noqa: PLC0415 - only this test needs it

    digits = load_digits()
    for item_id, png, label in itertools.islice(seed_module.digit_items(), 5):
        tensor = digit_images.image_to_digits(png)
        assert tensor.shape == (1, 64)
        assert label == str(digits.target[item_id])
        assert (tensor[0] == digits.data[item_id]).all()  # exactly the data set's values


def test_generated_requests_get_no_server_error(client: TestClient) -> None:
    assert_no_server_errors(client)
