"""The scenarios of the patterns beyond web-single and sync are registered and load in Locust."""

import pytest

from loadtests.scenarios import ANSWER_AT_ONCE, SCENARIOS, user_class_path
from tests.loadtests.test_scenarios import REPO_ROOT, _list_user_classes


@pytest.mark.parametrize(
    ("pattern", "user_class"),
    [
        ("serial", "PredictUser"),
        ("parallel", "ParallelUser"),
        ("data-cache", "ItemIdUser"),
        ("prep-pred", "ImageUser"),
        ("shadow", "ShadowUser"),
        ("canary", "CanaryUser"),
    ],
)
def test_the_pattern_runs_its_user_class(pattern: str, user_class: str) -> None:
    assert user_class_path(pattern)[1] == user_class
    result = _list_user_classes(str(REPO_ROOT / "loadtests" / "locustfile.py"), REPO_ROOT, pattern)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == user_class


def test_each_scenario_module_is_named_after_its_pattern() -> None:
    for pattern, path in SCENARIOS.items():
        module = path.partition(":")[0].rpartition(".")[2]
        if pattern in ANSWER_AT_ONCE:
            assert module == "predict", pattern
        else:
            assert module.rstrip("_") == pattern.replace("-", "_"), (pattern, module)
    scenario_files = {p.stem for p in (REPO_ROOT / "loadtests" / "scenarios").glob("*.py")}
    named = {path.partition(":")[0].rpartition(".")[2] for path in SCENARIOS.values()}
    assert scenario_files - named == {"__init__", "common", "iris_user"}  # the helpers
