"""The shared metric helpers record under the names every service uses."""

import os

from prometheus_client import REGISTRY

from shared import __version__
from shared.kit.metrics import GIT_SHA_VAR, record_model, stage


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_stage_times_the_block_under_its_name() -> None:
    before = sample("mlsp_stage_duration_seconds_count", stage="unit-test") or 0
    with stage("unit-test"):
        sum(range(1000))
    with stage("unit-test"):
        pass
    assert sample("mlsp_stage_duration_seconds_count", stage="unit-test") == before + 2
    assert sample("mlsp_stage_duration_seconds_sum", stage="unit-test") > 0


def test_stage_records_even_when_the_block_raises() -> None:
    before = sample("mlsp_stage_duration_seconds_count", stage="failing") or 0
    try:
        with stage("failing"):
            raise ValueError("boom")
    except ValueError:
        pass
    assert sample("mlsp_stage_duration_seconds_count", stage="failing") == before + 1


def test_record_model_publishes_name_version_and_sha256() -> None:
    record_model("tulip", "7", "ab" * 32)
    assert sample("mlsp_model_info", model="tulip", version="7", sha256="ab" * 32) == 1.0


def test_build_info_names_the_version_and_the_commit() -> None:
    git_sha = os.environ.get(GIT_SHA_VAR) or "unknown"
    assert sample("mlsp_build_info", version=__version__, git_sha=git_sha) == 1.0
