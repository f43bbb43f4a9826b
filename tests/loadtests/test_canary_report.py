"""make canary-report: share, latency, errors, labels and fallbacks read from a /metrics page."""

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from loadtests.canary_report import main, parse, render


def metrics_page() -> str:
    """A page as the canary api writes it: 90/10, 18 + 2 requests, 1 fallback."""
    registry = CollectorRegistry()
    weight = Gauge("mlsp_canary_weight", "", ["variant"], registry=registry)
    weight.labels("primary").set(90)
    weight.labels("canary").set(10)
    assigned = Counter("mlsp_canary_assigned", "", ["variant"], registry=registry)
    assigned.labels("primary").inc(18)
    assigned.labels("canary").inc(2)
    latency = Histogram(
        "mlsp_canary_latency_seconds", "", ["variant"], buckets=(0.001, 0.002), registry=registry
    )
    for _ in range(19):  # 18 of its own and the canary's fallback
        latency.labels("primary").observe(0.0015)
    latency.labels("canary").observe(0.0005)
    rows = Counter("mlsp_canary_rows", "", ["variant", "label"], registry=registry)
    rows.labels("primary", "setosa").inc(15)
    rows.labels("primary", "virginica").inc(4)
    rows.labels("canary", "versicolor").inc(1)
    errors = Counter("mlsp_canary_errors", "", ["variant", "code"], registry=registry)
    errors.labels("canary", "dependency_unavailable").inc()
    Counter("mlsp_canary_fallbacks", "", registry=registry).inc()
    return generate_latest(registry).decode()


def test_the_figures_come_from_the_counters_and_histograms() -> None:
    figures = parse(metrics_page())
    assert figures.weights == {"primary": 90, "canary": 10}
    assert figures.share("canary") == pytest.approx(0.1)
    assert (figures.answered("primary"), figures.answered("canary")) == (19, 1)
    assert figures.quantile_ms("canary", 0.5) == pytest.approx(0.5)
    assert figures.errors == {"canary": 1}
    assert figures.fallbacks == 1
    assert figures.label_share("primary", "setosa") == pytest.approx(15 / 19)
    assert figures.label_share("canary", "setosa") == 0


def test_the_report_shows_each_variant_side_by_side() -> None:
    text = render(parse(metrics_page()))
    assert "| canary | 10% | 10.0% | 2 | 1 | 0.50 ms | 0.99 ms | 1 |" in text
    assert "| primary | 90% | 90.0% | 18 | 19 |" in text
    assert "| variant | setosa | versicolor | virginica |" in text
    assert "| canary | 0.0% | 100.0% | 0.0% |" in text
    assert "Fallbacks: 1 of the canary's requests answered by the primary" in text


def test_an_api_without_canary_metrics_is_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("loadtests.shadow_report.read_metrics", lambda url: "# nothing\n")
    assert main(["--url", "http://127.0.0.1:1"]) == 2
    assert "is not a canary api" in capsys.readouterr().err


def test_an_api_that_is_down_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--url", "http://127.0.0.1:1"]) == 2
    assert "make up PATTERN=canary" in capsys.readouterr().err
