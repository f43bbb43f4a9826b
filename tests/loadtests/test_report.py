"""The report over a stats CSV in Locust 2.47's format."""

import json
from pathlib import Path

import pytest

from loadtests.report import ReportError, aggregated, format_table, main, read_stats


def test_rows_are_parsed(tmp_path: Path, stats_csv) -> None:
    prefix = stats_csv.write(tmp_path / "run", stats_csv.PREDICT, stats_csv.POLL, stats_csv.TOTAL)
    rows = read_stats(f"{prefix}_stats.csv")
    predict, poll, total = rows
    assert (predict.type, predict.name, predict.requests, predict.failures) == (
        "POST",
        "POST /predict",
        1000,
        20,
    )
    assert predict.failure_pct == pytest.approx(2.0)
    assert predict.rps == 500.12
    assert (predict.p50_ms, predict.p95_ms, predict.p99_ms, predict.max_ms) == (4, 9, 15, 61.25)
    assert poll.failure_pct == 0.0
    assert poll.p50_ms is None
    assert aggregated(rows) == total
    assert total.type == ""


def test_outputs(tmp_path: Path, stats_csv, capsys: pytest.CaptureFixture[str]) -> None:
    prefix = stats_csv.write(tmp_path / "run", stats_csv.PREDICT, stats_csv.POLL, stats_csv.TOTAL)
    assert main([prefix]) == 0

    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split()[:4] == ["type", "name", "requests", "failures"]
    assert printed[1].split() == [
        *("POST", "POST", "/predict", "1000", "20", "2.00", "500.1"),
        *("4", "9", "15", "61"),
    ]
    assert "N/A" in printed[2]
    assert printed[3].split()[:3] == ["Aggregated", "1000", "20"]

    markdown = Path(f"{prefix}_summary.md").read_text().splitlines()
    assert markdown[0].startswith("| type | name | requests | failures | fail % | req/s |")
    assert markdown[2] == "| POST | POST /predict | 1000 | 20 | 2.00 | 500.1 | 4 | 9 | 15 | 61 |"
    assert len(markdown) == 5

    summary = json.loads(Path(f"{prefix}_summary.json").read_text())
    assert summary["source"] == f"{prefix}_stats.csv"
    assert summary["rows"][-1] == {
        "type": "",
        "name": "Aggregated",
        "requests": 1000,
        "failures": 20,
        "failure_pct": 2.0,
        "rps": 500.12,
        "p50_ms": 4.0,
        "p95_ms": 9.0,
        "p99_ms": 15.0,
        "max_ms": 61.25,
    }


@pytest.mark.parametrize(("limit", "code"), [("5", 0), ("2", 0), ("1.99", 1), ("0", 1)])
def test_failure_threshold(tmp_path: Path, stats_csv, limit: str, code: int) -> None:
    prefix = stats_csv.write(tmp_path / "run", stats_csv.PREDICT, stats_csv.TOTAL)
    assert main([prefix, "--max-failure-pct", limit]) == code


def test_no_requests_fail_the_threshold(
    tmp_path: Path, stats_csv, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = stats_csv.write(tmp_path / "run", stats_csv.EMPTY_TOTAL)
    assert main([prefix]) == 0
    assert main([prefix, "--max-failure-pct", "100"]) == 1
    assert "no requests" in capsys.readouterr().err


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "absent")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_other_csv_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "x_stats.csv"
    path.write_text("Name,Count\nfoo,1\n")
    with pytest.raises(ReportError, match="missing Type"):
        read_stats(path)


def test_table_columns_line_up(tmp_path: Path, stats_csv) -> None:
    prefix = stats_csv.write(tmp_path / "run", stats_csv.PREDICT, stats_csv.TOTAL)
    lines = format_table(read_stats(f"{prefix}_stats.csv")).splitlines()
    assert len({len(line) for line in lines}) == 1


def test_the_cache_patterns_get_their_hit_ratio(
    tmp_path: Path, stats_csv, capsys: pytest.CaptureFixture[str]
) -> None:
    hit = stats_csv.PREDICT.replace("POST /predict,1000,20", "POST /predict [hit],860,0")
    miss = stats_csv.PREDICT.replace("POST /predict,1000,20", "POST /predict [miss],130,0")
    mixed = stats_csv.PREDICT.replace("POST /predict,1000,20", '"POST /predict [hit, miss]",5,0')
    other = stats_csv.PREDICT.replace("POST /predict,1000,20", "POST /predict [no X-Cache],5,5")
    prefix = stats_csv.write(
        tmp_path / "run", hit, miss, mixed, other, stats_csv.POLL, stats_csv.TOTAL
    )
    assert main([prefix]) == 0
    line = "cache: 86.5 % hits (865 of 1000 items; miss 135)"
    assert capsys.readouterr().out.splitlines()[-1] == line
    assert Path(f"{prefix}_summary.md").read_text().endswith(f"\n{line}\n")
    summary = json.loads(Path(f"{prefix}_summary.json").read_text())
    assert summary["cache"] == {"items": {"hit": 865, "miss": 135}, "hit_ratio": 0.865}


def test_no_cache_line_without_cache_answers(
    tmp_path: Path, stats_csv, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = stats_csv.write(tmp_path / "run", stats_csv.PREDICT, stats_csv.POLL, stats_csv.TOTAL)
    assert main([prefix]) == 0
    assert "cache:" not in capsys.readouterr().out
    assert "cache" not in json.loads(Path(f"{prefix}_summary.json").read_text())
