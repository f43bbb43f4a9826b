"""The fault suite's plan, verdict and report (tests/chaos.py), without a stack."""

import dataclasses
import sys
from pathlib import Path

import orjson
import pytest

from tests import chaos
from tests.chaos import Fault, FaultResult, planned_faults, runs
from tests.chaos_report import markdown


def result(**fields: object) -> FaultResult:
    base = {"pattern": "sync", "service": "predictor", "requests": 100, "failed": 0}
    return FaultResult(**{**base, "recovery_s": 1.0, **fields})  # type: ignore[arg-type]


def test_with_one_replica_failures_are_bounded_by_the_time_down() -> None:
    allowed = result(down_s=4.0, request_rate=10.0)
    assert allowed.failures_allowed == 60  # 4 s x 10 req/s x 1.5
    assert result(down_s=4.0, request_rate=10.0, failed=60).problems() == []
    (problem,) = result(down_s=4.0, request_rate=10.0, failed=61).problems()
    assert "61 requests failed, more than the 60 allowed" in problem


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_with_two_replicas_no_failure_is_allowed(how: str) -> None:
    assert result(replicas=2, how=how, down_s=4.0, request_rate=10.0).problems() == []
    (problem,) = result(replicas=2, how=how, down_s=4.0, request_rate=10.0, failed=1).problems()
    verb = "stopped" if how == "stop" else "killed"
    assert f"sync, predictor {verb} (1 of 2 replicas): 1 requests failed" in problem


def test_queued_work_must_be_neither_lost_nor_run_twice() -> None:
    assert result(queued=True, failed=500, lost=0, duplicated=0).problems() == []
    assert len(result(queued=True, lost=None, duplicated=None).problems()) == 2  # not counted
    assert "1 accepted jobs or rows lost" in result(queued=True, lost=1, duplicated=0).problems()[0]


def test_a_pattern_that_did_not_recover_is_a_problem() -> None:
    assert "not recovered" in result(recovery_s=None).problems()[0]


@pytest.mark.parametrize("how", ["stop", "slow"])
def test_a_service_off_the_answer_path_may_fail_no_request(how: str) -> None:
    candidate = result(
        pattern="shadow", service="candidate", how=how, down_s=4.0, request_rate=10.0
    )
    assert candidate.failures_allowed == 0
    (problem,) = result(
        pattern="shadow", service="candidate", how=how, down_s=4.0, request_rate=10.0, failed=1
    ).problems()
    verb = "stopped" if how == "stop" else "slowed"
    assert problem.startswith(f"shadow, candidate {verb}: 1 requests failed")
    assert "off the answer's path, none may" in problem
    primary = result(pattern="shadow", service="predictor", down_s=4.0, request_rate=10.0)
    assert primary.failures_allowed == 60


@pytest.mark.parametrize("how", ["stop", "kill", "slow"])
def test_a_service_another_answers_for_may_fail_no_request(how: str) -> None:
    canary = result(pattern="canary", service="canary", how=how, down_s=4.0, request_rate=10.0)
    assert canary.failures_allowed == 0
    (problem,) = result(
        pattern="canary", service="canary", how=how, down_s=4.0, request_rate=10.0, failed=2
    ).problems()
    assert problem.startswith("canary, canary ")
    assert "another service answers in its place, none may" in problem
    primary = result(pattern="canary", service="predictor", down_s=4.0, request_rate=10.0)
    assert primary.failures_allowed == 60


def test_a_slowed_service_is_named_in_the_report() -> None:
    text = markdown([result(pattern="shadow", service="candidate", how="slow")], "s", 3.0, 2.0)
    assert "| shadow | candidate | slowed (recreated with a delay) |" in text


def test_the_plan_stops_everything_kills_called_tiers_then_faults_one_of_two() -> None:
    plan = planned_faults(["predictor", "redis"], ["predictor"], (1, 2))
    assert plan == [
        Fault("predictor", "stop"),
        Fault("predictor", "kill"),
        Fault("redis", "stop"),  # state: stopped with one replica only
        Fault("predictor", "stop", 2),
        Fault("predictor", "kill", 2),
    ]
    assert planned_faults(["predictor", "redis"], ["predictor"], (2,))[0] == Fault(
        "predictor", "stop", 2
    )
    assert planned_faults(["worker"], [], (1, 2)) == [Fault("worker", "stop")]  # queued work


def test_runs_cover_every_variant_unless_one_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VARIANT", raising=False)
    assert runs(["sync", "prep-pred"]) == [
        ("sync", ""),
        ("prep-pred", "simple"),
        ("prep-pred", "microservice"),
    ]
    assert runs(["prep-pred:microservice"]) == [("prep-pred", "microservice")]
    monkeypatch.setenv("VARIANT", "simple")
    assert runs(["prep-pred"]) == [("prep-pred", "simple")]


def test_the_report_puts_one_replica_beside_two() -> None:
    faults = [
        result(failed=40, down_s=5.0, request_rate=10.0, failures={"503 unavailable": 40}),
        result(replicas=2, retries=1, rejoined_s=4.2),
        result(service="redis", failed=0),
    ]
    text = markdown(faults, "settings", down_s=3.0, steady_s=2.0)
    assert "| sync | predictor | stop (SIGTERM) | 40 of 100 | 0 of 100 | 1 | 4.2 |" in text
    assert "| sync | predictor | stop (SIGTERM) | 2 | 100 | 0 | 1 | 1.0 | 4.2 |  |  |  |" in text
    assert "| sync | redis | stop (SIGTERM) | 1 | 100 | 0 |  | 1.0 |  |  |  |  |" in text
    assert "|  |  | 503 unavailable: 40 |" in text
    assert "Settings: settings." in text


def test_runs_in_parts_merge_into_one_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = []
    for name, fault in (("a", result()), ("b", result(pattern="serial", replicas=2, failed=3))):
        part = tmp_path / f"{name}.json"
        run = {"settings": f"run {name}", "results": [dataclasses.asdict(fault)]}
        part.write_bytes(orjson.dumps(run))
        parts.append(str(part))
    out = tmp_path / "chaos.md"
    monkeypatch.setattr(sys, "argv", ["chaos", "--out", str(out), "--merge", *parts])
    with pytest.raises(SystemExit) as exited:
        chaos.main()
    assert exited.value.code == 1  # serial's 3 failures with 2 replicas
    text = out.read_text()
    assert "run a; run b" in text
    assert "| serial | predictor | stop (SIGTERM) | 2 | 100 | 3 |" in text
