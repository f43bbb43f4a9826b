"""The shared metric helpers record under the names every service uses."""

from prometheus_client import REGISTRY

from shared.metrics import record_model, stage


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


def test_record_model_publishes_name_and_version() -> None:
    record_model("tulip", "7")
    assert sample("mlsp_model_info", model="tulip", version="7") == 1.0
