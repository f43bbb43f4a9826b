"""make canary-bench's report: the split's accuracy and the p50 with and without the split."""

from loadtests.bench.canary import Run, markdown
from loadtests.openloop import LoopFigures


def test_the_report_shows_the_shares_the_runs_and_the_p50_ratio() -> None:
    shares = {(90, 10, True): 0.104, (90, 10, False): 0.097, (50, 50, True): 0.51,
              (50, 50, False): 0.49}  # fmt: skip
    runs = [
        Run("all primary", (100, 0), LoopFigures(900.0, 2.0, 5.0, 0, 1.5)),
        Run("split 90/10", (90, 10), LoopFigures(880.0, 2.2, 5.5, 0, 1.6)),
        Run("all primary", (100, 0), LoopFigures(900.0, 4.0, 5.0, 0, 1.5)),
        Run("split 90/10", (90, 10), LoopFigures(880.0, 4.4, 5.5, 0, 1.6)),
    ]
    text = markdown(shares, 2000, runs, "settings here")
    assert "| 90/10 | 2000 | 10.4% | 9.7% |" in text
    assert "| 50/50 | 2000 | 51.0% | 49.0% |" in text
    assert "| split 90/10 | 880 | 2.20 | 5.50 | 0 | 1.6 |" in text
    assert "(median of the rounds): 3.30 / 3.00 ms = 1.10" in text
    assert "varied by up to 2.00x all primary and 2.00x split" in text
    assert "settings here" in text
