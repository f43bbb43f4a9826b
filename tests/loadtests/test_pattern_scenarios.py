"""The scenarios of the patterns beyond web-single and sync are registered and load in Locust."""

import pytest

from loadtests.scenarios import user_class_path
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
