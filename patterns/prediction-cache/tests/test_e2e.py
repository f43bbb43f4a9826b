"""prediction-cache end to end: hits, misses, a stampede, Redis stopped and hung under the api."""

import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import orjson
import pytest

from tests.bad_input import GOOD_ROW, BadInput, assert_refused_by_the_stack, bad_inputs
from tests.compose_stack import ComposeStack
from tests.metrics_text import MetricsChange

pytestmark = pytest.mark.e2e

RETRY_S = 0.5  # CACHE_RETRY_S of the stack: how long the api bypasses Redis after a failure
CACHE_TIMEOUT_S = 0.25  # the longest the api waits on Redis
PREDICTOR_TIMEOUT_S = 1.0  # the longest it waits on the predictor
#: What the api promises a request costs at most with Redis hung: one Redis timeout, then
#: the predictor's; checked with a 5x margin for a loaded machine.
PROMISED_S = CACHE_TIMEOUT_S + PREDICTOR_TIMEOUT_S


@pytest.fixture(scope="module")
def stack() -> Iterator[ComposeStack]:
    with ComposeStack(
        "prediction-cache",
        CACHE_RETRY_S=str(RETRY_S),
        CACHE_TIMEOUT_S=str(CACHE_TIMEOUT_S),
        PREDICTOR_TIMEOUT_S=str(PREDICTOR_TIMEOUT_S),
    ) as stack:
        yield stack


def predict(stack: ComposeStack, body: bytes) -> httpx.Response:
    return stack.post("/predict", content=body, headers={"Content-Type": "application/json"})


def metric(stack: ComposeStack, sample: str) -> float:
    """The value of one sample of the api's /metrics (0 when absent)."""
    found = re.search(rf"^{re.escape(sample)} (\S+)$", stack.get("/metrics").text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


PREDICTOR_CALLS = 'mlsp_outbound_duration_seconds_count{outcome="ok",peer="predictor"}'


def wait_until_cached(stack: ComposeStack, body: bytes, timeout_s: float = 30) -> None:
    """Until the api uses Redis again (an answer that is not a bypass)."""
    deadline = time.monotonic() + timeout_s
    while predict(stack, body).headers.get("x-cache") == "bypass":
        if time.monotonic() > deadline:
            raise AssertionError(f"still bypassing Redis after {timeout_s} s")
        time.sleep(0.2)


def answered_bypassing_the_cache(stack: ComposeStack, body: bytes) -> list[httpx.Response]:
    """Three answers to ``body`` while Redis is away: all 200, all bypassing it, all in time."""
    answers = [predict(stack, body) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.headers["x-cache"] for a in answers] == ["bypass"] * 3
    seconds = [a.elapsed.total_seconds() for a in answers]
    assert max(seconds) < 5 * PROMISED_S, seconds  # the client's own timeout is 10 s
    return answers


def test_only_the_api_is_published(stack: ComposeStack) -> None:
    lines = stack.compose("ps", "--format", "{{.Service}} {{.Health}} {{.Ports}}").splitlines()
    by_service = {line.split()[0]: line for line in lines if line}
    assert set(by_service) == {"api", "predictor", "redis"}
    assert all("healthy" in line for line in by_service.values())
    assert f"127.0.0.1:{stack.port}->8080/tcp" in by_service["api"]
    assert "->" not in by_service["predictor"]
    assert "->" not in by_service["redis"]


def test_redis_is_a_bounded_lru_cache_behind_a_password(stack: ComposeStack) -> None:
    config = stack.compose(
        "exec", "-T", "redis", "redis-cli", "config", "get", "maxmemory*"
    ).split()
    settings = dict(zip(config[::2], config[1::2], strict=True))
    assert settings["maxmemory-policy"] == "allkeys-lru"
    assert int(settings["maxmemory"]) == 64 * 1024 * 1024
    anonymous = stack.compose("exec", "-T", "-e", "REDISCLI_AUTH=", "redis", "redis-cli", "ping")
    assert "NOAUTH" in anonymous


@pytest.mark.parametrize("case", bad_inputs(), ids=str)
def test_bad_input_gets_a_clear_error_and_reaches_no_cache_or_predictor(
    stack: ComposeStack, case: BadInput
) -> None:
    change = MetricsChange(lambda: stack.get("/metrics").text)
    assert_refused_by_the_stack(stack, "/predict", case)
    assert change.increase("mlsp_cache_requests_total") == 0
    assert stack.post("/predict", json={"instances": [GOOD_ROW]}).status_code == 200


def test_a_repeat_is_a_hit_also_when_written_differently(stack: ComposeStack) -> None:
    spellings = [
        b'{"instances": [[6.123, 2.9, 4.5, 1.5]]}',
        b'{"instances": [[6.1230, 2.90, 4.5e0, 1.5]]}',
        b'{"instances": [{"petal_width": 1.5, "petal_length": 4.5,'
        b' "sepal_width": 2.9, "sepal_length": 6.123}]}',
    ]
    answers = [predict(stack, body) for body in spellings]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.headers["x-cache"] for a in answers] == ["miss", "hit", "hit"]
    assert len({a.content for a in answers}) == 1
    assert answers[0].json()["model_name"] == "iris-boosted"


def test_answers_are_the_models_own(stack: ComposeStack) -> None:
    examples = stack.get("/model").json()["examples"]
    body = orjson.dumps({"instances": [e["input"] for e in examples]})
    first, second = predict(stack, body), predict(stack, body)
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")
    labels = [p["label"] for p in second.json()["predictions"]]
    assert labels == [e["label"] for e in examples]


def test_a_stampede_on_one_new_input_calls_the_predictor_once(stack: ComposeStack) -> None:
    body = b'{"instances": [[7.042, 3.1, 5.9, 2.2]]}'
    calls_before = metric(stack, PREDICTOR_CALLS)
    with ThreadPoolExecutor(max_workers=24) as pool:
        answers = list(pool.map(lambda _: predict(stack, body), range(24)))
    assert {a.status_code for a in answers} == {200}
    results = [a.headers["x-cache"] for a in answers]
    assert results.count("miss") == 1
    assert set(results) <= {"miss", "coalesced", "hit"}
    assert metric(stack, PREDICTOR_CALLS) == calls_before + 1


def test_the_metrics_count_hits_and_misses(stack: ComposeStack) -> None:
    body = b'{"instances": [[5.555, 2.5, 3.9, 1.1]]}'
    change = MetricsChange(lambda: stack.get("/metrics").text)
    for _ in range(3):
        predict(stack, body)
    assert change.increase("mlsp_cache_requests_total", cache="predictions", result="hit") == 2
    assert change.increase("mlsp_cache_requests_total", cache="predictions", result="miss") == 1
    assert 0 < metric(stack, 'mlsp_cache_hit_ratio{cache="predictions"}') < 1
    assert metric(stack, 'mlsp_cache_available{cache="predictions"}') == 1


def test_with_redis_stopped_the_api_answers_from_the_predictor_and_recovers(
    stack: ComposeStack,
) -> None:
    body = b'{"instances": [[5.9, 3.0, 5.1, 1.8]]}'
    assert predict(stack, body).status_code == 200  # cached before Redis goes
    with stack.stopped("redis"):
        answers = answered_bypassing_the_cache(stack, body)
        assert answers[0].json()["predictions"][0]["label"] == "virginica"
        assert stack.get("/health/ready").status_code == 200  # Redis is not a dependency
        assert metric(stack, 'mlsp_cache_available{cache="predictions"}') == 0
        warning = stack.wait_for_log("api", "bypassing Redis")
        assert warning["level"] == "WARNING"
    stack.compose("up", "--wait", "redis")
    wait_until_cached(stack, body)
    assert predict(stack, body).headers["x-cache"] == "hit"  # a fresh, empty Redis filled again
    stack.wait_for_log("api", "Redis answers again")


def test_with_redis_hung_the_api_answers_within_its_timeout_and_recovers(
    stack: ComposeStack,
) -> None:
    body = b'{"instances": [[6.4, 2.8, 5.6, 2.1]]}'
    with stack.paused("redis"):
        answered_bypassing_the_cache(stack, body)
    wait_until_cached(stack, body)
    assert predict(stack, body).headers["x-cache"] == "hit"


def test_locust_smoke_load_has_no_failures_and_reports_hits_and_misses(
    stack: ComposeStack,
) -> None:
    rows = stack.locust_smoke(seconds=5, users=4, REPEAT_SHARE="0.5")
    assert rows["Aggregated"]["requests"] > 0
    assert rows["Aggregated"]["failures"] == 0
    assert rows["POST /predict [hit]"]["requests"] > 0
    assert rows["POST /predict [miss]"]["requests"] > 0


def test_readme_examples_answer_as_quoted(stack: ComposeStack) -> None:
    assert stack.readme_example_problems() == []
