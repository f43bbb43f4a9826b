"""The fault suite, reduced for CI: a few internal containers stopped and restarted under load.

``make chaos`` runs every fault of every pattern (tests/chaos.py) and writes the report;
this runs the faults that cover each kind of dependency: the predictor of a sync
pattern, the worker and the Redis of a queueing one. Asserted: the pattern recovers
and no accepted job is lost or run twice. Failed-request counts and recovery times are
printed (``-s``), not asserted: they depend on the machine.
"""

import pytest

from tests.chaos import run_pattern

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("pattern", "services"), [("sync", ["predictor"]), ("async", ["worker", "redis"])]
)
def test_the_pattern_recovers_and_loses_nothing(pattern: str, services: list[str]) -> None:
    results = run_pattern(pattern, services)
    assert [r.service for r in results] == services
    for result in results:
        assert result.recovered, f"{pattern} did not recover from a stopped {result.service}"
        assert result.requests > 0
        assert not result.lost, f"{pattern}: {result.lost} accepted jobs lost"
        assert not result.duplicated, f"{pattern}: {result.duplicated} jobs run twice"
