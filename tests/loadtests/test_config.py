"""Settings from environment variables."""

import pytest

from loadtests.config import ConfigError, Settings, load_settings


def test_defaults() -> None:
    assert load_settings({}) == Settings(
        pattern="", batch_size=1, seed=42, repeat_share=0.0, wait_seconds=0.0
    )


def test_values_are_parsed() -> None:
    settings = load_settings(
        {
            "PATTERN": " web-single ",
            "BATCH_SIZE": "8",
            "SEED": "7",
            "REPEAT_SHARE": "0.25",
            "WAIT_SECONDS": "0.5",
        }
    )
    assert settings == Settings("web-single", 8, 7, 0.25, 0.5)
    polling = load_settings({"POLL_SECONDS": "0.1", "JOB_DEADLINE": "5", "POLL_WAIT_S": "0.5"})
    assert (polling.poll_seconds, polling.job_deadline, polling.poll_wait_s) == (0.1, 5.0, 0.5)
    assert load_settings({"POLL_WAIT_S": "0"}).poll_wait_s == 0
    items = load_settings({"ITEMS": "100", "ZIPF_S": "1.2"})
    assert (items.items, items.zipf_s) == (100, 1.2)


def test_empty_values_mean_default() -> None:
    assert load_settings({"BATCH_SIZE": "", "REPEAT_SHARE": " "}) == Settings()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BATCH_SIZE", "0"),
        ("BATCH_SIZE", "two"),
        ("SEED", "-1"),
        ("REPEAT_SHARE", "1.5"),
        ("REPEAT_SHARE", "nan"),
        ("ITEMS", "0"),
        ("ZIPF_S", "-0.5"),
        ("WAIT_SECONDS", "-1"),
        ("POLL_SECONDS", "-0.1"),
        ("POLL_WAIT_S", "-1"),
        ("JOB_DEADLINE", "0"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings({name: value})
