"""The fault suite's verdict on one fault (tests/chaos.py), without a stack."""

import pytest

from tests import chaos
from tests.chaos import FaultResult


def result(**fields: object) -> FaultResult:
    base = {"pattern": "sync", "service": "predictor", "requests": 100, "failed": 0}
    return FaultResult(**{**base, "recovery_s": 1.0, **fields})  # type: ignore[arg-type]


def test_without_a_queue_failures_are_bounded_by_the_time_down() -> None:
    allowed = result(down_s=4.0, request_rate=10.0)
    assert allowed.failures_allowed == 60  # 4 s x 10 req/s x 1.5
    assert result(down_s=4.0, request_rate=10.0, failed=60).problems() == []
    (problem,) = result(down_s=4.0, request_rate=10.0, failed=61).problems()
    assert "61 requests failed, more than the 60 allowed" in problem


def test_with_replicas_no_failure_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chaos, "FAILURES_ALLOWED_WHILE_DOWN", False)
    assert result(down_s=4.0, request_rate=10.0, failed=1).problems() != []
    assert result(down_s=4.0, request_rate=10.0).problems() == []


def test_queued_work_must_be_neither_lost_nor_run_twice() -> None:
    assert result(queued=True, failed=500, lost=0, duplicated=0).problems() == []
    assert len(result(queued=True, lost=None, duplicated=None).problems()) == 2  # not counted
    assert "1 accepted jobs or rows lost" in result(queued=True, lost=1, duplicated=0).problems()[0]


def test_a_pattern_that_did_not_recover_is_a_problem() -> None:
    assert "not recovered" in result(recovery_s=None).problems()[0]


def test_a_service_off_the_answer_path_may_fail_no_request() -> None:
    candidate = result(pattern="shadow", service="candidate", down_s=4.0, request_rate=10.0)
    assert candidate.failures_allowed == 0
    (problem,) = result(
        pattern="shadow", service="candidate", down_s=4.0, request_rate=10.0, failed=1
    ).problems()
    assert problem.startswith("shadow, candidate stopped: 1 requests failed")
    primary = result(pattern="shadow", service="predictor", down_s=4.0, request_rate=10.0)
    assert primary.failures_allowed == 60


def test_a_slowed_service_is_named_with_its_settings() -> None:
    slowed = result(pattern="shadow", service="candidate", slowed={"DELAY_MS": "2000"}, failed=2)
    assert slowed.what == "candidate slowed (DELAY_MS=2000)"
    assert "shadow, candidate slowed (DELAY_MS=2000): 2 requests failed" in slowed.problems()[0]
    table = chaos.markdown([slowed], "settings")
    assert "| shadow | candidate slowed (DELAY_MS=2000) | 100 | 2 | 1.0 |" in table
