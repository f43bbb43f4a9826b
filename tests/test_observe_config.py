"""Prometheus' scrape list keeps up with the patterns' services (no Docker daemon needed)."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
PATTERNS = sorted(p.parent for p in (REPO / "patterns").glob("*/compose.yaml"))
# Services that serve no /metrics: one-shot jobs, stores with their own exporters
# (not run here), the load generator and the bench's fixed-answer endpoints.
NOT_SCRAPED = {
    "base", "model-export", "migrate", "seed", "ctl", "redis", "postgres", "prometheus",
    "loadtest", "bare", "bare-fastapi",
}  # fmt: skip


def scraped_names() -> set[str]:
    config = yaml.safe_load((REPO / "compose/observe/prometheus.yml").read_text())
    return {
        name
        for job in config["scrape_configs"]
        for sd in job.get("dns_sd_configs", [])
        for name in sd["names"]
    }


@pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker compose CLI")
@pytest.mark.parametrize("pattern", PATTERNS, ids=lambda p: p.name)
def test_every_service_with_metrics_is_scraped(pattern: Path) -> None:
    env = {**os.environ, "REDIS_PASSWORD": "x", "POSTGRES_PASSWORD": "x"}
    config = subprocess.run(
        ["docker", "compose", "-f", "compose.yaml", "--profile", "*", "config", "--format", "json"],
        cwd=pattern,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    services = set(json.loads(config.stdout)["services"])
    missing = services - NOT_SCRAPED - scraped_names()
    assert not missing, f"add {sorted(missing)} to compose/observe/prometheus.yml's names"
