"""The comparison report: one row per pattern, failed patterns reported, async columns."""

import json
from pathlib import Path

from loadtests.compare import load_result, main, markdown


def write_summary(results: Path, pattern: str, rows: list[dict]) -> None:
    (results / f"{pattern}_summary.json").write_text(json.dumps({"rows": rows}))


def row(type_: str, name: str, requests: int, rps: float, p50: float, *, failures: int = 0) -> dict:
    return {
        "type": type_,
        "name": name,
        "requests": requests,
        "failures": failures,
        "rps": rps,
        "p50_ms": p50,
        "p95_ms": p50 * 2,
        "p99_ms": p50 * 3,
        "max_ms": p50 * 4,
        "failure_pct": 0.0,
    }


def test_sync_async_and_failed_patterns(tmp_path: Path) -> None:
    write_summary(
        tmp_path,
        "web-single",
        [
            row("POST", "POST /predict", 1000, 100.0, 5, failures=10),
            row("", "Aggregated", 1000, 100.0, 5),
        ],
    )
    write_summary(
        tmp_path,
        "async",
        [
            row("POST", "POST /predict", 500, 50.0, 3),
            row("GET", "GET /jobs/[id]", 200, 20.0, 2),
            row("E2E", "job completed", 500, 50.0, 40),
            row("", "Aggregated", 700, 70.0, 3),
        ],
    )
    (tmp_path / "batch.failed").write_text("make load PATTERN=batch failed")
    web = load_result(tmp_path, "web-single")
    assert (web.rps, web.p50, web.p99, web.failure_pct) == (100.0, 5, 15, 1.0)
    queued = load_result(tmp_path, "async")
    assert (queued.rps, queued.p50, queued.e2e_p50, queued.e2e_p99) == (70.0, 3, 40, 120)
    failed = load_result(tmp_path, "batch")
    assert failed.error == "make load PATTERN=batch failed"
    assert load_result(tmp_path, "serial").error == "no summary written"
    table = markdown([web, queued, failed], "16 users")
    assert "| web-single | 100.0 | 5 | 10 | 15 | 1.00% | n/a | n/a |" in table
    assert "| async | 70.0 | 3 | 6 | 9 | 0.00% | 40 | 120 |" in table
    assert "| batch | failed: make load PATTERN=batch failed |" in table
    assert "cores" in table.splitlines()[0]


def test_main_writes_the_table_and_chart_and_flags_failures(tmp_path: Path) -> None:
    write_summary(tmp_path, "web-single", [row("POST", "POST /predict", 10, 1.0, 5)])
    assert main([str(tmp_path), "web-single", "--settings", "2 users"]) == 0
    assert (tmp_path / "comparison.md").read_text().count("| web-single |") == 1
    assert (tmp_path / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    assert main([str(tmp_path), "web-single", "sync"]) == 1


def test_a_cache_pattern_is_measured_on_all_its_requests_not_the_hits_alone(
    tmp_path: Path,
) -> None:
    write_summary(
        tmp_path,
        "data-cache",
        [
            row("POST", "POST /predict [hit]", 800, 80.0, 4),
            row("POST", "POST /predict [miss]", 200, 20.0, 9),
            row("", "Aggregated", 1000, 100.0, 5),
        ],
    )
    result = load_result(tmp_path, "data-cache")
    assert (result.rps, result.p50, result.p99) == (100.0, 5, 15)
