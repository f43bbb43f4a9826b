"""canary end to end: the split by weight, sticky clients, weights changed at run time (the
command that make canary-promote, canary-rollback and canary-weights run), bad weights refused,
and a stopped canary failing no request."""

import subprocess
import sys
from collections import Counter
from collections.abc import Iterator

import orjson
import pytest

from tests.chaos import Fault, fault_under_load
from tests.compose_stack import REPO_ROOT, ComposeStack
from tests.metrics_text import MetricsChange
from tests.pattern_e2e import test_readme_examples, test_smoke_load  # noqa: F401 (run here)

pytestmark = pytest.mark.e2e

ROW = [5.1, 3.5, 1.4, 0.2]


@pytest.fixture(scope="module")
def stack() -> Iterator[ComposeStack]:
    with ComposeStack("canary", WEIGHTS_REFRESH_S="0.2") as stack:
        yield stack


def admin(stack: ComposeStack, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m admin <args>`` in the api container, as ``make canary-promote`` runs it."""
    compose = [str(REPO_ROOT / "compose" / "compose.sh"), "-f", str(stack.compose_file)]
    return stack.run(*compose, "exec", "-T", "api", "python", "-m", "admin", *args)


def split(stack: ComposeStack, clients: int, prefix: str = "user") -> Counter[tuple[str, str]]:
    """(X-Variant, model_version) of one request from each of ``clients`` clients."""
    answers: Counter[tuple[str, str]] = Counter()
    for i in range(clients):
        answer = stack.post(
            "/predict", json={"instances": [ROW]}, headers={"X-Client-Id": f"{prefix}-{i}"}
        )
        assert answer.status_code == 200, answer.text
        answers[answer.headers["X-Variant"], answer.json()["model_version"]] += 1
    return answers


@pytest.fixture
def weights_restored(stack: ComposeStack) -> Iterator[None]:
    """Put the default 90/10 back after the test."""
    yield
    assert admin(stack, "set", "90", "10").returncode == 0


def test_only_the_api_is_published(stack: ComposeStack) -> None:
    health = stack.compose("ps", "--format", "{{.Service}} {{.Health}} {{.Ports}}").splitlines()
    by_service = {line.split()[0]: line for line in health if line}
    assert set(by_service) == {"api", "predictor", "canary", "redis"}
    for service in by_service.values():
        assert "healthy" in service
    assert f"127.0.0.1:{stack.port}->8080/tcp" in by_service["api"]
    assert "->" not in by_service["predictor"] + by_service["canary"] + by_service["redis"]


def test_the_split_follows_the_default_weights(stack: ComposeStack) -> None:
    answers = split(stack, 400)
    assert set(answers) == {("primary", "1"), ("canary", "2")}  # each answer names its version
    assert 20 <= answers["canary", "2"] <= 60  # 10% of 400
    assert stack.get("/canary").json()["weights"] == {"primary": 90, "canary": 10}


def test_a_client_keeps_its_variant(stack: ComposeStack) -> None:
    for i in range(10):
        assert len(split(stack, 1, prefix=f"sticky-{i}") + split(stack, 1, f"sticky-{i}")) == 1


def test_promote_and_rollback_are_one_command_each(
    stack: ComposeStack, weights_restored: None
) -> None:
    promoted = admin(stack, "promote")
    assert promoted.returncode == 0, promoted.stderr
    assert orjson.loads(promoted.stdout)["weights"] == {"primary": 0, "canary": 100}
    assert split(stack, 20) == Counter({("canary", "2"): 20})
    rolled_back = admin(stack, "rollback")
    assert rolled_back.returncode == 0, rolled_back.stderr
    assert split(stack, 20) == Counter({("primary", "1"): 20})


def test_weights_change_at_run_time_and_bad_ones_change_nothing(
    stack: ComposeStack, weights_restored: None
) -> None:
    assert admin(stack, "set", "50", "50").returncode == 0
    half = split(stack, 200, prefix="half")
    assert 70 <= half["canary", "2"] <= 130
    for primary, canary, field in (("60", "50", "primary+canary"), ("-10", "110", "primary")):
        refused = admin(stack, "set", primary, canary)
        assert refused.returncode != 0
        error = orjson.loads(refused.stdout)["error"]
        assert (error["code"], error["field"]) == ("invalid_input", field)
    assert stack.get("/canary").json()["weights"] == {"primary": 50, "canary": 50}
    # From outside the container (the published port), weights cannot be changed at all.
    outside = stack.request("PUT", "/canary/weights", json={"primary": 0, "canary": 100})
    assert outside.status_code == 403


def test_a_stopped_canary_fails_no_request(stack: ComposeStack, weights_restored: None) -> None:
    assert admin(stack, "set", "50", "50").returncode == 0
    change = MetricsChange(lambda: stack.get("/metrics").text)
    result = fault_under_load(stack, Fault("canary"))
    assert result.requests > 0
    assert result.failed == 0, result.failures
    assert change.increase("mlsp_canary_fallbacks_total") > 0
    assert stack.get("/health/ready").status_code == 200


def test_the_report_compares_the_variants(stack: ComposeStack) -> None:
    report = stack.run(sys.executable, "-m", "loadtests.canary_report", "--url", stack.base_url)
    assert report.returncode == 0, report.stderr
    assert "| primary | 90% |" in report.stdout
    assert "| variant | setosa |" in report.stdout
    assert "Fallbacks: " in report.stdout
