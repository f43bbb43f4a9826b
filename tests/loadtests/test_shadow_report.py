"""make shadow-report: the agreement, confusion table and latencies read from a /metrics page."""

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from loadtests.shadow_report import histogram_quantile, main, parse, render


def metrics_page() -> str:
    """A page as the shadow api writes it: 8 rows agreeing, 2 not; both latencies; outcomes."""
    registry = CollectorRegistry()
    rows = Counter("mlsp_shadow_rows", "", ["primary_label", "candidate_label"], registry=registry)
    rows.labels("setosa", "setosa").inc(5)
    rows.labels("virginica", "virginica").inc(3)
    rows.labels("versicolor", "virginica").inc(2)
    latency = Histogram(
        "mlsp_shadow_latency_seconds",
        "",
        ["model"],
        buckets=(0.001, 0.002, 0.004),
        registry=registry,
    )
    for seconds in (0.0005, 0.0015, 0.0015, 0.0015):
        latency.labels("primary").observe(seconds)
    latency.labels("candidate").observe(0.003)
    calls = Counter("mlsp_mirror_calls", "", ["mirror", "outcome"], registry=registry)
    calls.labels("candidate", "ok").inc(10)
    calls.labels("candidate", "dropped").inc(4)
    calls.labels("other", "failed").inc(99)  # another mirror's: not the candidate's
    mirrored = Counter("mlsp_mirror_rows", "", ["mirror", "outcome"], registry=registry)
    mirrored.labels("candidate", "ok").inc(10)
    mirrored.labels("candidate", "dropped").inc(12)  # a window of 12 rows over the bound
    return generate_latest(registry).decode()


def test_the_figures_come_from_the_counters_and_histograms() -> None:
    figures = parse(metrics_page())
    assert figures.compared == 10
    assert figures.agreement == pytest.approx(0.8)
    assert figures.labels() == ["setosa", "versicolor", "virginica"]
    assert figures.requests("primary") == 4
    # rank 2 of 4: the first of the 3 observations in (1, 2] ms, a third of the way in
    assert figures.quantile_ms("primary", 0.5) == pytest.approx(4 / 3)
    assert figures.quantile_ms("candidate", 0.5) == pytest.approx(3.0)
    assert figures.mirrors == {"ok": 10, "dropped": 4}
    assert figures.mirrored_rows == {"ok": 10, "dropped": 12}


def test_the_report_shows_the_confusion_table_and_outcomes() -> None:
    text = render(parse(metrics_page()))
    assert "Agreement: 80.0% of 10 rows both models answered" in text
    assert "| versicolor | 0 | 0 | 2 |" in text
    assert "| setosa | 5 | 0 | 0 |" in text
    assert "| primary | 4 | 1.33 ms | 1.99 ms |" in text
    assert "Mirrored calls: ok 10, failed 0, timeout 0, dropped 4" in text
    assert "Mirrored rows: ok 10, failed 0, timeout 0, dropped 12" in text


def test_quantiles_follow_prometheus_interpolation() -> None:
    buckets = [(0.1, 0.0), (0.2, 10.0), (float("inf"), 10.0)]
    assert histogram_quantile(buckets, 0.5) == pytest.approx(0.15)
    assert histogram_quantile([(0.1, 5.0), (float("inf"), 10.0)], 0.99) == 0.1
    assert histogram_quantile([(0.1, 0.0), (float("inf"), 0.0)], 0.5) is None
    assert histogram_quantile([], 0.5) is None


def test_an_api_that_does_not_answer_gets_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--url", "http://127.0.0.1:9"]) == 2
    assert "is the shadow stack up? make up PATTERN=shadow" in capsys.readouterr().err
