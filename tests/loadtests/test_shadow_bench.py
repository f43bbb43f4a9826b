"""make shadow-bench: each run's own figures, and the goals the report checks."""

import pytest

from loadtests.bench.shadow import Run, difference, markdown, p50_verdict, paired_ratios
from loadtests.openloop import LoopFigures
from loadtests.shadow_report import ShadowFigures


def figures(rows: float, primary: float, ok: float) -> ShadowFigures:
    return ShadowFigures(
        rows={("setosa", "setosa"): rows},
        buckets={"primary": [(0.001, primary), (float("inf"), primary)]},
        mirrors={"ok": ok},
    )


def test_a_run_counts_only_what_grew_during_it() -> None:
    grown = difference(figures(10, 7, 5), figures(4, 3, 1))
    assert grown.rows == {("setosa", "setosa"): 6}
    assert grown.buckets["primary"] == [(0.001, 4), (float("inf"), 4)]
    assert grown.mirrors == {"ok": 4}
    assert difference(figures(2, 1, 1), ShadowFigures()).compared == 2  # a new api: all of it


def test_the_report_states_both_goals() -> None:
    runs = [
        Run("off", {}, LoopFigures(rps=100, p50_ms=2.0, p99_ms=5.0)),
        Run("on", {}, LoopFigures(rps=98, p50_ms=2.1, p99_ms=5.0)),
        Run("on, a call per request", {}, LoopFigures(rps=95, p50_ms=2.4, p99_ms=6.0)),
        Run("off", {}, LoopFigures(rps=100, p50_ms=2.0, p99_ms=5.0)),
        Run("on", {}, LoopFigures(rps=98, p50_ms=2.1, p99_ms=5.0)),
        Run("on, a call per request", {}, LoopFigures(rps=95, p50_ms=2.4, p99_ms=6.0)),
        Run("on, candidate stopped", {}, LoopFigures(rps=97, p50_ms=2.2, failed=0)),
    ]
    text = markdown(runs, figures(150, 1, 1), "the settings")
    assert "(median of the rounds): 1.05 (rounds: 1.05, 1.05; goal <= 1.10): met" in text
    assert "a call per request (SHADOW_WINDOW_MS=0): 1.20 (medians" in text
    assert "candidate slow or stopped: 0 (goal 0): met" in text
    assert "| on, candidate stopped | 97 | 2.20 | n/a | 0 |" in text
    assert "Agreement: 100.0% of 150 rows" in text
    runs[-1].figures.failed = 3
    assert "candidate slow or stopped: 3 (goal 0): NOT met" in markdown(runs, figures(1, 1, 1), "")


def test_each_round_is_read_against_its_own_off_run() -> None:
    # The machine slowed down in round 2: both of its runs, not the ratio.
    runs = [
        Run("off", {}, LoopFigures(p50_ms=2.0)),
        Run("on", {}, LoopFigures(p50_ms=2.1)),
        Run("off", {}, LoopFigures(p50_ms=4.0)),
        Run("on", {}, LoopFigures(p50_ms=4.4)),
        Run("off", {}, LoopFigures(p50_ms=2.0)),
        Run("on", {}, LoopFigures(p50_ms=3.0)),
    ]
    assert paired_ratios(runs, "on") == pytest.approx([1.05, 1.10, 1.50])
    assert p50_verdict([1.05, 1.10, 1.50]).endswith("goal <= 1.10): met")
    assert p50_verdict([1.05, 1.20, 1.50]).endswith("NOT met")
