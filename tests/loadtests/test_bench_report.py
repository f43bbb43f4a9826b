"""The ratios of ``make bench`` from the figure files its steps write."""

import json
from pathlib import Path

from loadtests.bench.report import load_figures, table

FIGURES = {
    "nginx": {"rps": 12000.0, "p50_ms": 1.0},
    "web-single, 2 processes": {"rps": 4500.0, "p50_ms": 3.0},
    "web-single, granian": {"rps": 2400.0, "p50_ms": 5.0},
    "web-single, granian 2 workers": {"rps": 3600.0, "p50_ms": 4.0},
    "predictor, 1 replica": {"rps": 1000.0, "p50_ms": 16.0},
    "predictor, 2 replicas": {"rps": 1700.0, "p50_ms": 9.0},
    "bare": {"rps": 6000.0, "p50_ms": 2.0},
    "bare-fastapi": {"rps": 4000.0, "p50_ms": 3.0},
    "bare ASGI app": {"rps": 9000.0, "p50_ms": 1.0},
    "bare RSGI app": {"rps": 6000.0, "p50_ms": 1.0},
    "web-single": {"rps": 3000.0, "p50_ms": 4.0},
    "sync": {"rps": 1500.0, "p50_ms": 6.0},
    "sync one call a request": {"rps": 800.0, "p50_ms": 12.0},
    "web-single, 1 connection": {"rps": 3000.0, "p50_ms": 0.25},
    "sync, 1 connection": {"rps": 800.0, "p50_ms": 1.0},
    "batch": {"rows": 10000, "rounds": 3, "predict_rows_per_s_median": 45000.0,
              "db_only_rows_per_s_median": 50000.0},
}  # fmt: skip


def write(folder: Path, figures: dict[str, dict[str, float]]) -> None:
    for name, data in figures.items():
        (folder / f"{name}.json").write_text(json.dumps(data))


def test_each_ratio_is_printed_with_its_inputs(tmp_path: Path) -> None:
    write(tmp_path, FIGURES)
    rows = {line.split(":")[0]: line for line in table(load_figures(tmp_path), "s").splitlines()}
    assert (
        "| 0.50 | >= 0.70 | web-single 3000 req/s / bare endpoint 6000 req/s |"
        in rows["| serving overhead"]
    )
    assert "| 1.50 |" in rows["| framework"]
    assert (
        "| 0.25 | >= 0.5 | web-single 3000 req/s / nginx 12000 req/s |"
        in rows["| transport ceiling"]
    )
    assert (
        "| 0.38 | >= 0.5 | web-single, 2 processes 4500 req/s / nginx 12000 req/s |"
        in rows["| transport ceiling, 2 processes"]
    )
    assert "| 1.50 | (report) | web-single, 2 processes 4500 req/s / " in rows["| server processes"]
    assert (
        "| 0.80 | (report) | web-single, granian 2400 req/s / web-single 3000 req/s |"
        in rows["| granian server"]
    )
    assert (
        "| 0.80 | (report) | web-single, granian 2 workers 3600 req/s / web-single, 2 "
        in (rows["| granian server, 2 processes"])
    )
    assert (
        "| 1.70 | (report) | predictor, 2 replicas 1700 req/s / predictor, 1 replica 1000 req/s |"
        in rows["| scaling"]
    )
    assert "| 1.50 | <= 1.5 | sync p50 6.00 ms / web-single p50 4.00 ms |" in rows["| hop cost"]
    assert (
        "| 3.00 | (report) | sync one call a request p50 12.00 ms / web-single p50 4.00 ms |"
        in rows["| hop cost, one call a request"]
    )
    assert "| 4.00 | (report) | sync, 1 connection p50 1.00 ms / " in rows["| hop at rest"]
    assert "| 0.90 |" in rows["| batch"]
    assert "median of 3 rounds over 10000 rows" in rows["| batch"]
    assert (
        "| 0.75 | (report) | bare ASGI app 9000 req/s / nginx 12000 req/s |"
        in rows["| server floor"]
    )
    assert (
        "| 0.50 | (report) | bare RSGI app 6000 req/s / nginx"
        in rows["| server floor, granian RSGI"]
    )


def test_a_missing_pattern_is_na_not_a_crash(tmp_path: Path) -> None:
    write(tmp_path, {"web-single": FIGURES["web-single"]})
    (tmp_path / "broken.json").write_text("{not json")
    lines = table(load_figures(tmp_path), "s").splitlines()
    assert sum("| n/a | " in line for line in lines) == 18
