"""make spread's arithmetic and report (loadtests/bench/spread.py), without a stack."""

import argparse

import pytest

from loadtests.bench.spread import markdown, one_tier, shares, uneven


def test_shares_and_the_even_split_within_a_fraction() -> None:
    assert shares([100, 100, 200]) == [0.25, 0.25, 0.5]
    assert shares([0, 0]) == [0.0, 0.0]
    assert uneven([100, 110, 90], 0.2) == []
    assert uneven([100, 125, 75], 0.2) == [1, 2]  # 25% over and under the even 100


def test_the_report_has_a_row_per_replica_and_says_which_are_off() -> None:
    text = markdown("sync", "predictor", [100, 100, 100], 0.2, "settings here")
    assert "| 2 | 100 | 33.3% | +0.0% |" in text
    assert "Every replica's share is within 20% of an even split (33.3%)." in text
    assert "Settings: settings here." in text
    off = markdown("sync", "predictor", [150, 75, 75], 0.2, "s")
    assert "| 1 | 150 | 50.0% | +50.0% |" in off
    assert "Replicas 1, 2, 3 are further than 20% from an even split" in off


def test_one_tier_with_two_or_more_replicas() -> None:
    assert one_tier("predictor=3") == ("predictor", 3)
    for bad in ("predictor", "predictor=1", "=3", "predictor=x"):
        with pytest.raises(argparse.ArgumentTypeError, match="one tier and 2 or more"):
            one_tier(bad)
