"""The fault suite, reduced for CI: a few internal containers stopped and restarted under load.

``make chaos`` runs every fault of every pattern (tests/chaos.py) and writes the report;
this runs the faults that cover each kind of dependency: the predictor of a sync
pattern (stopped and killed, with 1 replica and then 1 of 2), the worker and the Redis
of a queueing one. Asserted, per fault (:meth:`tests.chaos.FaultResult.problems`): the
pattern recovers; where work is queued, no accepted job is lost or run twice
(``lost == 0``, ``duplicated == 0``); where none is, with 2 replicas no request fails,
and with 1 the failed requests are bounded by the seconds the dependency was down at the
load's request rate. Recovery times are printed (``-s``).
"""

import pytest

from tests.chaos import FAULTS, run_pattern

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("pattern", "services"), [("sync", ["predictor"]), ("async", ["worker", "redis"])]
)
def test_the_pattern_recovers_and_loses_nothing(pattern: str, services: list[str]) -> None:
    results = run_pattern(pattern, services, replica_counts=(1, 2))
    faults = [(r.service, r.how, r.replicas) for r in results]
    if pattern == "sync":  # a called tier: killed too, and faulted again as 1 of 2 replicas
        assert faults == [(s, how, n) for n in (1, 2) for s in services for how in FAULTS]
    else:  # queued work: stopped, with 1 replica only
        assert faults == [(s, "stop", 1) for s in services]
    for result in results:
        assert result.requests > 0
        assert result.request_rate > 0
        assert result.queued == (pattern != "sync")
    problems = [problem for result in results for problem in result.problems()]
    assert problems == []
