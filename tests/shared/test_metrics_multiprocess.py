"""The in-flight and queue-depth gauges in prometheus_client's multiprocess mode (an api
with WEB_CONCURRENCY > 1): set by each process, summed or read at scrape time, and a dead
process's count dropped. prometheus_client picks its mode at import, so each process here
is a fresh interpreter sharing one PROMETHEUS_MULTIPROC_DIR."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

REPO_ROOT = Path(__file__).resolve().parents[2]
#: A server process with ``N`` requests in flight (argv[1]), waiting for stdin to end.
SERVING = """
import sys
from shared.kit.overload import InFlightLimit
limit = InFlightLimit(0)
limit.publish()
for _ in range(int(sys.argv[1])):
    limit.enter()
print("ready", flush=True)
sys.stdin.read()
"""
#: A process serving a scrape: one request in flight, one left, an RQ queue of 7 jobs.
SCRAPING = """
import asyncio
from shared.kit.metrics import QUEUE_DEPTH, metrics_endpoint
from shared.kit.overload import InFlightLimit
limit = InFlightLimit(0)
limit.publish()
limit.enter(); limit.enter(); limit.leave()
QUEUE_DEPTH.labels("predict").set(7)
print(asyncio.run(metrics_endpoint(None)).body.decode())
"""


def python(tmp_path: Path, script: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        env=env,
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def scrape(tmp_path: Path) -> dict[str, float]:
    """What a scrape served by a new process says: sample name (with labels) -> value."""
    out, _ = python(tmp_path, SCRAPING).communicate(timeout=60)
    return {
        sample.name + "".join(f"{{{k}={v}}}" for k, v in sample.labels.items()): sample.value
        for family in text_string_to_metric_families(out)
        for sample in family.samples
    }


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another server process, alive, with 2 requests in flight."""
    process = python(tmp_path, SERVING, "2")
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        yield process
    finally:
        process.kill()
        process.communicate()


def test_in_flight_is_the_sum_of_the_live_processes(
    tmp_path: Path, serving: subprocess.Popen[str]
) -> None:
    assert scrape(tmp_path)["mlsp_http_requests_in_flight"] == 3  # 2 there + 1 in the scraper


def test_queue_depth_is_read_by_the_process_serving_the_scrape(tmp_path: Path) -> None:
    assert scrape(tmp_path)["mlsp_queue_depth{queue=predict}"] == 7


def test_a_killed_process_in_flight_requests_are_dropped(
    tmp_path: Path, serving: subprocess.Popen[str]
) -> None:
    serving.kill()  # a crash: its count stays in its file until the next process starts
    serving.wait()
    assert scrape(tmp_path)["mlsp_http_requests_in_flight"] == 1
