"""OBSERVE=1: Prometheus scrapes every service of a pattern, and the breakdown adds up."""

from collections.abc import Iterator

import orjson
import pytest

from tests.compose_stack import REPO_ROOT, ComposeStack, free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack() -> Iterator[ComposeStack]:
    prometheus_port = free_port()
    with ComposeStack(
        "sync", COMPOSE_PROFILES="observe", PROMETHEUS_PORT=str(prometheus_port)
    ) as stack:
        stack.prometheus = f"http://127.0.0.1:{prometheus_port}"
        yield stack


def prometheus_query(stack: ComposeStack, expr: str) -> list[dict]:
    answer = stack.http.get(f"{stack.prometheus}/api/v1/query", params={"query": expr})
    return answer.json()["data"]["result"]


def test_prometheus_is_published_on_loopback_only(stack: ComposeStack) -> None:
    assert stack.compose("port", "prometheus", "9090").strip().startswith("127.0.0.1:")
    assert stack.http.get(f"{stack.prometheus}/-/ready").status_code == 200


def test_every_service_is_scraped_with_the_shared_metric_names(stack: ComposeStack) -> None:
    for _ in range(20):
        stack.post("/predict", json={"instances": [[5.1, 3.5, 1.4, 0.2]]})
    stack.wait_for(
        lambda: (
            {r["metric"]["service"] for r in prometheus_query(stack, "up == 1")}
            >= {"api", "predictor"}
            and prometheus_query(stack, 'mlsp_grpc_requests_total{method="ModelInfer"}')
            and prometheus_query(stack, 'mlsp_outbound_duration_seconds_count{service="api"}')
        ),
        "Prometheus to scrape api and predictor after the requests",
    )
    names = {
        r["metric"]["__name__"]: r["metric"]["service"]
        for r in prometheus_query(stack, '{__name__=~"mlsp_.*_count|mlsp_.*_total"}')
    }
    assert "mlsp_http_requests_total" in names
    assert "mlsp_stage_duration_seconds_count" in names
    assert "mlsp_outbound_duration_seconds_count" in names
    stages = {
        (r["metric"]["service"], r["metric"]["stage"])
        for r in prometheus_query(stack, "mlsp_stage_duration_seconds_count")
    }
    assert {("api", "decode"), ("predictor", "inference")} <= stages


def test_the_breakdown_attributes_to_each_hop_no_more_than_the_client_waited(
    stack: ComposeStack,
) -> None:
    """The servers' side (Prometheus) against the client's (Locust), two separate records:
    every hop gets a share, and what the breakdown gives the services fits in the time the
    client waited. How much of it the servers see is a figure of the machine: printed
    here, reported by ``make load OBSERVE=1``. (Request counts are not compared: Prometheus
    extrapolates a short window's increase; per-request means divide that out.)"""
    stack.compose(
        "run", "--rm", "-e", "PATTERN=sync", "-e", "PROMETHEUS_URL=http://prometheus:9090",
        "-e", "WAIT_SECONDS=0.05", "loadtest", "--users", "1", "--spawn-rate", "1",
        "--run-time", "10s", "--host", "http://api:8080", "--out", "/results/e2e-sync-observe",
    )  # fmt: skip
    (result,) = orjson.loads(
        (REPO_ROOT / "loadtests" / "results" / "e2e-sync-observe_breakdown.json").read_bytes()
    )
    assert result["requests"] > 0
    segments = result["segments"]
    assert {"api", "predictor", "between services", "client side"} <= set(segments)
    assert segments["api"] > 0
    assert segments["predictor"] > 0
    assert result["stages"]["predictor: inference"] > 0
    attributed = sum(v for k, v in segments.items() if k != "client side")
    assert attributed <= 1.05 * result["client_mean_ms"]  # 5%: scrape-window rounding
    print(
        f"servers saw {attributed:.2f} ms of the client's {result['client_mean_ms']:.2f} ms "
        f"({attributed / result['client_mean_ms']:.0%})"
    )
