"""loadtests/bench/rollout_locust.py: Locust's history read for spawned users and failing
seconds."""

from pathlib import Path

from loadtests.bench import rollout_locust
from loadtests.bench.rollout_locust import Run, failing_seconds, markdown, users_running

HEADER = (
    "Timestamp,User Count,Type,Name,Requests/s,Failures/s,Total Request Count,Total Failure Count"
)


def history(tmp_path: Path, rows: list[tuple[int, int]]) -> Path:
    """A stats history with (users, total failures) per second."""
    path = tmp_path / "run_stats_history.csv"
    lines = [HEADER] + [
        f"{1000 + i},{users},,Aggregated,0,0,{10 * i},{failures}"
        for i, (users, failures) in enumerate(rows)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_users_run_once_the_history_shows_them_all(tmp_path: Path) -> None:
    assert not users_running(tmp_path / "absent.csv")
    assert not users_running(history(tmp_path, [(0, 0), (8, 0)]))
    assert users_running(history(tmp_path, [(0, 0), (rollout_locust.USERS, 0)]))


def test_failing_seconds_are_those_in_which_failures_grew(tmp_path: Path) -> None:
    assert failing_seconds(history(tmp_path, [(16, 0), (16, 0), (16, 3), (16, 3), (16, 9)])) == 2
    assert failing_seconds(history(tmp_path, [(16, 0)])) == 0


def test_the_report_has_a_row_per_run_and_the_rollout_lines() -> None:
    runs = [
        Run("sync", "1", "2", 1000, 0, 300.0, 30.5, 0, "1.00 / 1.00 / 1.00", ["[ 1.0 s] x"]),
        Run("web-single", "1", "2", 2000, 100, 500.0, 10.0, 4, "2.00 / 1.00 / 1.00", []),
    ]
    text = markdown(runs, "2026-12-03 14:00-14:10 UTC")
    assert "| sync | 1 -> 2 | 1000 | 0 | 0.00 | 300 | 30.5 | 0 |" in text
    assert "| web-single | 1 -> 2 | 2000 | 100 | 5.00 | 500 | 10.0 | 4 |" in text
    assert "The rollout's own lines (sync, 1 -> 2):" in text
    assert "web-single, 1 -> 2):" not in text
