"""Prometheus' scrape list keeps up with the patterns' services (no Docker daemon needed)."""

from pathlib import Path

import pytest
import yaml

from tests.compose_config import compose_config, patterns

REPO = Path(__file__).resolve().parent.parent
# Services that serve no /metrics: one-shot jobs and image builds, stores with their own
# exporters (not run here), the load generator and the bench's fixed-answer endpoints.
NOT_SCRAPED = {
    "base", "prep-base", "model-export", "migrate", "seed", "ctl", "redis", "postgres",
    "prometheus", "loadtest", "bare", "bare-fastapi", "bare-asgi", "bare-rsgi",
    # make bench's other targets: the nginx transport ceiling, web-single in 2 processes
    # and under granian; the bare apps above have no /metrics at all.
    "nginx", "api-2-processes", "api-granian", "api-granian-2-workers",
}  # fmt: skip


def scraped_names() -> set[str]:
    config = yaml.safe_load((REPO / "compose/observe/prometheus.yml").read_text())
    return {
        name
        for job in config["scrape_configs"]
        for sd in job.get("dns_sd_configs", [])
        for name in sd["names"]
    }


@pytest.mark.parametrize("pattern", patterns())
def test_every_service_with_metrics_is_scraped(pattern: str) -> None:
    services = set(compose_config(pattern)["services"])
    missing = services - NOT_SCRAPED - scraped_names()
    assert not missing, f"add {sorted(missing)} to compose/observe/prometheus.yml's names"
