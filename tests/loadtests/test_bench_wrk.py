"""wrk's output read into figures, and the median of a target's rounds."""

import pytest

from loadtests.bench.wrk import FIGURES, combined, connection_shares, medians, parse, run

OUTPUT = """Running 10s test @ http://api:8080/predict
  1 threads and 16 connections
  Latency Distribution
     50%    4.27ms
     75%    5.01ms
     90%  780.00us
     99%    1.20s
  34730 requests in 10.00s, 9.84MB read
  Non-2xx or 3xx responses: 3
Requests/sec:   3472.81
"""


def test_wrk_output_becomes_figures_in_ms() -> None:
    assert parse(OUTPUT) == {
        "rps": 3472.81,
        "p50_ms": 4.27,
        "p90_ms": 0.78,
        "p99_ms": 1200.0,
        "errors": 3.0,
    }


def test_a_target_keeps_the_median_of_its_rounds_and_every_error() -> None:
    rounds = [
        {"rps": 3000.0, "p50_ms": 5.0, "p90_ms": 6.0, "p99_ms": 9.0, "errors": 0.0},
        {"rps": 4500.0, "p50_ms": 3.0, "p90_ms": 4.0, "p99_ms": 7.0, "errors": 1.0},
        {"rps": 3500.0, "p50_ms": 4.0, "p90_ms": 5.0, "p99_ms": 30.0, "errors": 2.0},
    ]
    assert medians(rounds) == {
        "rps": 3500.0,
        "p50_ms": 4.0,
        "p90_ms": 5.0,
        "p99_ms": 9.0,
        "errors": 3.0,
    }


def test_a_load_over_several_urls_sums_the_rates_and_keeps_the_worst_percentiles() -> None:
    parts = [
        dict(zip(FIGURES, values, strict=True))
        for values in [(1000.0, 5.0, 9.0, 20.0, 1.0), (1200.0, 4.0, 10.0, 15.0, 0.0)]
    ]
    assert combined(parts) == dict(zip(FIGURES, (2200.0, 5.0, 10.0, 20.0, 1.0), strict=True))


def test_connections_are_split_evenly_over_the_urls() -> None:
    assert connection_shares(16, 2) == [8, 8]
    assert connection_shares(16, 3) == [6, 5, 5]


def test_fewer_connections_than_urls_is_refused() -> None:
    with pytest.raises(ValueError, match="1 connections cannot load 2 URLs"):
        run(["http://a/", "http://b/"], seconds=1, connections=1, unique=False)
