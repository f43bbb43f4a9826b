"""prediction-cache's api in-process, against a real predictor process and a real redis-server."""

import asyncio
from collections.abc import Callable, Iterator
from types import ModuleType

import httpx
import pytest
import redis
from fastapi.testclient import TestClient

from conftest import PredictorProcess, _free_port
from tests.api_fuzz import assert_no_server_errors
from tests.bad_input import GOOD_ROW, BadInput, assert_refused, bad_inputs
from tests.metrics_text import MetricsChange, sample_total

MODEL = "iris-boosted"
ROW = [5.1, 3.5, 1.4, 0.2]
# The same flower written five ways (numbers, exponents, key order, digits past float32's
# precision): the model gets the same float32 tensor each time, so they share one entry.
SPELLINGS = [
    b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}',
    b'{"instances":[[5.10,3.50,1.40,2e-1]]}',
    b'{"instances": [[5.1, 3.5, 1.4, 0.2000000001]]}',
    b'{"instances": [{"petal_width": 0.2, "sepal_length": 5.1,'
    b' "petal_length": 1.4, "sepal_width": 3.5}]}',
    b'{"instances": [{"sepal_width": 3.5, "petal_length": 1.4,'
    b' "petal_width": 0.2, "sepal_length": 5.1}]}',
]


def load_api(load_service: Callable[..., ModuleType], **env: str) -> ModuleType:
    """The api module, serving the pattern's model, with ``env`` as its settings."""
    return load_service("prediction-cache", "api", MODEL_NAME=MODEL, **env)


@pytest.fixture
def api(
    load_service: Callable[..., ModuleType], predictor_server: PredictorProcess, redis_url: str
) -> ModuleType:
    return load_api(load_service, PREDICTOR_URL=predictor_server.grpc_target, REDIS_URL=redis_url)


@pytest.fixture
def client(api: ModuleType) -> Iterator[TestClient]:
    with TestClient(api.app) as client:
        yield client


def test_a_repeated_input_is_answered_from_the_cache(
    client: TestClient, predictor_server: PredictorProcess
) -> None:
    examples = client.get("/model").json()["examples"]
    body = {"instances": [e["input"] for e in examples]}
    before = predictor_server.infer_calls()
    miss = client.post("/predict", json=body)
    hit = client.post("/predict", json=body)
    assert (miss.status_code, hit.status_code) == (200, 200)
    assert (miss.headers["x-cache"], hit.headers["x-cache"]) == ("miss", "hit")
    assert miss.content == hit.content
    answer = hit.json()
    assert [p["label"] for p in answer["predictions"]] == [e["label"] for e in examples]
    assert (answer["model_name"], answer["model_version"]) == (MODEL, "1")
    assert predictor_server.infer_calls() == before + 1


def test_equal_inputs_written_differently_hit_the_same_entry(client: TestClient) -> None:
    answers = [client.post("/predict", content=body) for body in SPELLINGS]
    assert [a.headers["x-cache"] for a in answers] == ["miss", "hit", "hit", "hit", "hit"]
    assert len({a.content for a in answers}) == 1
    as_ints = client.post("/predict", json={"instances": [[6, 3, 5, 2]]})
    as_floats = client.post("/predict", json={"instances": [[6.0, 3.0, 5.0, 2.0]]})
    assert (as_ints.headers["x-cache"], as_floats.headers["x-cache"]) == ("miss", "hit")
    other = client.post("/predict", json={"instances": [[5.1, 3.5, 1.4, 0.3]]})
    assert other.headers["x-cache"] == "miss"


async def test_concurrent_misses_on_one_input_make_one_predictor_call(
    api: ModuleType, predictor_server: PredictorProcess
) -> None:
    before = predictor_server.infer_calls()
    transport = httpx.ASGITransport(app=api.app)
    async with (
        api.app.router.lifespan_context(api.app),
        httpx.AsyncClient(transport=transport, base_url="http://api") as client,
    ):
        answers = await asyncio.gather(
            *(client.post("/predict", content=SPELLINGS[i % len(SPELLINGS)]) for i in range(40))
        )
    assert {a.status_code for a in answers} == {200}
    results = [a.headers["x-cache"] for a in answers]
    assert results.count("miss") == 1
    assert set(results) <= {"miss", "coalesced", "hit"}
    assert predictor_server.infer_calls() == before + 1


def test_the_metrics_count_hits_and_misses_and_time_the_stages(client: TestClient) -> None:
    change = MetricsChange(lambda: client.get("/metrics").text)
    for _ in range(3):
        client.post("/predict", json={"instances": [[6.0, 2.9, 4.5, 1.5]]})
    cache = {"cache": "predictions"}
    assert change.increase("mlsp_cache_requests_total", **cache, result="miss") == 1
    assert change.increase("mlsp_cache_requests_total", **cache, result="hit") == 2
    metrics = client.get("/metrics").text
    assert 0 < sample_total(metrics, "mlsp_cache_hit_ratio", **cache) <= 1
    assert sample_total(metrics, "mlsp_cache_available", **cache) == 1
    assert change.increase("mlsp_stage_duration_seconds_count", stage="cache_lookup") == 3
    assert change.increase("mlsp_stage_duration_seconds_count", stage="predictor_call") == 1


def test_bad_input_is_refused_before_the_cache_and_the_predictor(
    client: TestClient, predictor_server: PredictorProcess
) -> None:
    calls = predictor_server.infer_calls()
    change = MetricsChange(lambda: client.get("/metrics").text)
    answer = client.post("/predict", json={"instances": [[1, 2, 3]]})
    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == "instances[0]"
    assert "x-cache" not in answer.headers
    assert change.increase("mlsp_cache_requests_total") == 0
    assert predictor_server.infer_calls() == calls


@pytest.mark.parametrize("case", bad_inputs(), ids=str)
def test_bad_input_gets_a_clear_error_and_reaches_no_cache_or_predictor(
    client: TestClient, predictor_server: PredictorProcess, redis_url: str, case: BadInput
) -> None:
    calls = predictor_server.infer_calls()
    change = MetricsChange(lambda: client.get("/metrics").text)
    assert_refused(client.post("/predict", content=case.body), case)
    assert predictor_server.infer_calls() == calls
    assert change.increase("mlsp_cache_requests_total") == 0
    assert redis.Redis.from_url(redis_url).dbsize() == 0  # nothing stored
    assert client.post("/predict", json={"instances": [GOOD_ROW]}).status_code == 200


def test_without_redis_the_api_answers_from_the_predictor_and_stays_ready(
    load_service: Callable[..., ModuleType], predictor_server: PredictorProcess
) -> None:
    api = load_api(
        load_service,
        PREDICTOR_URL=predictor_server.grpc_target,
        REDIS_URL=f"redis://127.0.0.1:{_free_port()}/0",
    )
    with TestClient(api.app) as client:
        answers = [client.post("/predict", json={"instances": [ROW]}) for _ in range(2)]
        assert [a.status_code for a in answers] == [200, 200]
        assert [a.headers["x-cache"] for a in answers] == ["bypass", "bypass"]
        assert answers[0].json()["predictions"][0]["label"] == "setosa"
        assert client.get("/health/ready").json() == {"status": "ready"}
        metrics = client.get("/metrics").text
        assert sample_total(metrics, "mlsp_cache_available", cache="predictions") == 0


def test_without_the_predictor_a_miss_is_503_and_nothing_is_cached(
    load_service: Callable[..., ModuleType], redis_url: str
) -> None:
    api = load_api(
        load_service,
        PREDICTOR_URL=f"127.0.0.1:{_free_port()}",
        PREDICTOR_TIMEOUT_S="0.5",
        REDIS_URL=redis_url,
    )
    with TestClient(api.app) as client:
        for _ in range(2):
            answer = client.post("/predict", json={"instances": [ROW]})
            assert answer.status_code == 503
            assert answer.json()["error"]["code"] == "dependency_unavailable"
        assert client.get("/health/ready").status_code == 503


def test_settings_need_a_redis_url(
    load_service: Callable[..., ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    with pytest.raises(ValueError, match="redis_url"):
        load_api(load_service, PREDICTOR_URL="127.0.0.1:1")


def test_generated_requests_get_no_server_error(client: TestClient) -> None:
    assert_no_server_errors(client)
