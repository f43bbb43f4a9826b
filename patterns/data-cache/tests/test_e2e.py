"""data-cache end to end: the seed, both variants, misses then hits, 404/422, Redis stopped."""

import re
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest

from tests.compose_stack import RESULTS, ComposeStack
from tests.metrics_text import MetricsChange

pytestmark = pytest.mark.e2e

RETRY_S = 0.5  # CACHE_RETRY_S of the stack: how long the api bypasses Redis after a failure
TTL_S = 600  # CACHE_TTL_S of the stack
MAXMEMORY = "32mb"  # REDIS_MAXMEMORY of the stack


@pytest.fixture(scope="module")
def stack() -> Iterator[ComposeStack]:
    with ComposeStack(
        "data-cache",
        CACHE_VARIANT="tensor",
        CACHE_RETRY_S=str(RETRY_S),
        CACHE_TTL_S=str(TTL_S),
        REDIS_MAXMEMORY=MAXMEMORY,
    ) as stack:
        yield stack


def predict(stack: ComposeStack, *ids: object) -> httpx.Response:
    return stack.post("/predict", json={"ids": list(ids)})


def redis_cli(stack: ComposeStack, *args: str) -> str:
    return stack.compose("exec", "-T", "redis", "redis-cli", *args).strip()


def metric(stack: ComposeStack, sample: str) -> float:
    """The value of one sample of the api's /metrics (0 when absent)."""
    found = re.search(rf"^{re.escape(sample)} (\S+)$", stack.get("/metrics").text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def use_variant(stack: ComposeStack, variant: str) -> None:
    """Recreate the api with ``CACHE_VARIANT=variant`` (the rest of the stack stays)."""
    stack.env["CACHE_VARIANT"] = variant
    stack.compose("up", "-d", "--wait", "api")


def test_the_seed_loaded_the_digits_once_and_a_second_run_changes_nothing(
    stack: ComposeStack,
) -> None:
    lines = stack.compose("ps", "--all", "--format", "{{.Service}} {{.State}} {{.ExitCode}}")
    assert "seed exited 0" in lines
    first = stack.wait_for_log("seed", "items:")
    assert (first["inserted"], first["total"]) == (1797, 1797)
    again = stack.compose("run", "--rm", "seed")
    assert "inserted 0, updated 0, unchanged 1797 (1797 in all)" in again


def test_only_the_api_is_published(stack: ComposeStack) -> None:
    lines = stack.compose("ps", "--format", "{{.Service}} {{.Health}} {{.Ports}}").splitlines()
    by_service = {line.split()[0]: line for line in lines if line}
    assert set(by_service) == {"api", "postgres", "redis"}
    assert all("healthy" in line for line in by_service.values())
    assert f"127.0.0.1:{stack.port}->8080/tcp" in by_service["api"]
    assert "->" not in by_service["postgres"] + by_service["redis"]


def test_redis_is_a_bounded_lru_cache_and_entries_live_for_the_ttl(stack: ComposeStack) -> None:
    config = redis_cli(stack, "config", "get", "maxmemory*").split()
    settings = dict(zip(config[::2], config[1::2], strict=True))
    assert settings["maxmemory-policy"] == "allkeys-lru"
    assert int(settings["maxmemory"]) == 32 * 1024 * 1024
    assert predict(stack, 1234).status_code == 200
    (key,) = redis_cli(stack, "--scan", "--pattern", "mlsp:item:tensor:*:1234").split()
    assert 0 < int(redis_cli(stack, "pttl", key)) <= TTL_S * 1000
    assert int(redis_cli(stack, "strlen", key)) == 64 * 4  # 64 float32


def test_tensor_variant_a_miss_then_a_hit_with_the_same_answer(stack: ComposeStack) -> None:
    miss, hit = predict(stack, 17), predict(stack, 17)
    assert (miss.status_code, hit.status_code) == (200, 200)
    assert (miss.headers["x-cache"], hit.headers["x-cache"]) == ("miss", "hit")
    assert miss.content == hit.content
    answer = hit.json()
    assert (answer["model_name"], answer["model_version"]) == ("digits", "1")
    assert answer["predictions"][0]["id"] == 17
    several = predict(stack, 17, 18, 17)
    assert several.headers["x-cache"].split(", ")[0] == "hit"
    assert [p["id"] for p in several.json()["predictions"]] == [17, 18, 17]


def test_the_answers_are_right_for_a_clear_majority(stack: ComposeStack) -> None:
    ids = list(range(1700, 1740))
    predictions = predict(stack, *ids).json()["predictions"]
    truth = [stack.get(f"/items/{i}/image").headers["x-item-label"] for i in ids]
    right = sum(p["label"] == label for p, label in zip(predictions, truth, strict=True))
    assert right >= 0.8 * len(ids)
    image = stack.get("/items/1700/image")
    assert image.headers["content-type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")


def test_unknown_ids_are_404_and_bad_ids_422(stack: ComposeStack) -> None:
    unknown = predict(stack, 5, 1797)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["field"] == "ids[1]"
    assert redis_cli(stack, "--scan", "--pattern", "mlsp:item:*:1797") == ""  # absences not cached
    assert stack.get("/items/99999/image").status_code == 404
    for body, field in (({"ids": ["7"]}, "ids[0]"), ({"ids": [-1]}, "ids[0]"), ({}, "ids")):
        bad = stack.post("/predict", json=body)
        assert bad.status_code == 422
        assert bad.json()["error"]["field"] == field


def test_with_redis_stopped_the_api_answers_from_the_database_and_recovers(
    stack: ComposeStack,
) -> None:
    assert predict(stack, 42).status_code == 200  # cached before Redis goes
    with stack.stopped("redis"):
        answers = [predict(stack, 42) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 200]
        assert [a.headers["x-cache"] for a in answers] == ["bypass"] * 3
        assert stack.get("/health/ready").status_code == 200  # Redis is not a dependency
        assert metric(stack, 'mlsp_cache_available{cache="tensor"}') == 0
        assert stack.wait_for_log("api", "bypassing Redis")["level"] == "WARNING"
    stack.compose("up", "--wait", "redis")
    deadline = time.monotonic() + 30
    while predict(stack, 42).headers["x-cache"] == "bypass":  # until the api tries Redis again
        assert time.monotonic() < deadline, "still bypassing Redis"
        time.sleep(0.2)
    assert predict(stack, 42).headers["x-cache"] == "hit"  # a fresh, empty Redis filled again
    stack.wait_for_log("api", "Redis answers again")


def test_the_metrics_count_hits_and_misses_and_time_every_stage(stack: ComposeStack) -> None:
    change = MetricsChange(lambda: stack.get("/metrics").text)
    for _ in range(3):
        predict(stack, 777)
    assert change.increase("mlsp_cache_requests_total", cache="tensor", result="hit") == 2
    assert change.increase("mlsp_cache_requests_total", cache="tensor", result="miss") == 1
    assert 0 < metric(stack, 'mlsp_cache_hit_ratio{cache="tensor"}') < 1
    for name in ("decode", "cache_lookup", "inference"):
        assert change.increase("mlsp_stage_duration_seconds_count", stage=name) == 3, name
    for name in ("db_fetch", "preprocess"):  # the tensor variant: only the miss runs them
        assert change.increase("mlsp_stage_duration_seconds_count", stage=name) == 1, name


def test_raw_variant_caches_the_stored_png(stack: ComposeStack) -> None:
    use_variant(stack, "raw")
    try:
        miss, hit = predict(stack, 321), predict(stack, 321)
        assert (miss.headers["x-cache"], hit.headers["x-cache"]) == ("miss", "hit")
        assert miss.content == hit.content
        stored = stack.compose(
            "exec", "-T", "redis", "redis-cli", "--no-raw", "get", "mlsp:item:raw:321"
        )
        assert stored.startswith('"\\x89PNG')
        assert metric(stack, 'mlsp_cache_requests_total{cache="raw",result="hit"}') == 1
    finally:
        use_variant(stack, "tensor")


def test_locust_smoke_load_reports_the_hit_ratio(stack: ComposeStack) -> None:
    row = stack.locust_smoke(seconds=5, users=4)["Aggregated"]
    assert row["requests"] > 0
    assert row["failures"] == 0
    summary = orjson.loads((RESULTS / "e2e-data-cache-smoke_summary.json").read_bytes())
    assert summary["cache"]["items"]["hit"] > 0
    assert 0 < summary["cache"]["hit_ratio"] < 1


def test_readme_examples_answer_as_quoted(stack: ComposeStack) -> None:
    assert stack.readme_example_problems() == []
