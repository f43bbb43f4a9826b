"""Scenario registry, answer checks, and which class the locustfile exposes."""

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from loadtests.scenarios import SCENARIOS, UnknownPatternError, user_class_path
from loadtests.scenarios.common import (
    accepted_job_url,
    fire_timing,
    job_problem,
    prediction_problem,
    user_seed,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
# Prints the User classes Locust itself would find in the locustfile given as argv[1].
LIST_USER_CLASSES = (
    "import sys\n"
    "from locust.util.load_locustfile import load_locustfile\n"
    "users, _ = load_locustfile(sys.argv[1])\n"
    "print(','.join(sorted(users)))\n"
)


def test_every_registered_pattern_names_a_module_and_class() -> None:
    assert "web-single" in SCENARIOS
    for pattern in SCENARIOS:
        module, name = user_class_path(pattern)
        assert module.startswith("loadtests.scenarios.")
        assert (REPO_ROOT / (module.replace(".", "/") + ".py")).is_file()
        assert name.isidentifier()


@pytest.mark.parametrize("pattern", ["nope", ""])
def test_unknown_pattern_lists_the_known_ones(pattern: str) -> None:
    with pytest.raises(UnknownPatternError, match=r"known patterns: .*web-single"):
        user_class_path(pattern)


@pytest.mark.parametrize(
    ("status", "content", "problem"),
    [
        (200, b'{"predictions": [{}, {}]}', None),
        (503, b'{"detail": "down"}', "HTTP 503"),
        (200, b"<html>", "response body is not JSON"),
        (200, None, "response body is not JSON"),
        (200, b"[1, 2]", "response has no 'predictions' list"),
        (200, b'{"predictions": null}', "response has no 'predictions' list"),
        (200, b'{"predictions": [{}]}', "expected 2 predictions, got 1"),
    ],
)
def test_prediction_problem(status: int, content: bytes | None, problem: str | None) -> None:
    assert prediction_problem(status, content, expected=2) == problem


@pytest.mark.parametrize(
    ("status", "content", "answer"),
    [
        (202, b'{"job_id": "a", "url": "/jobs/a"}', ("/jobs/a", None)),
        (200, b'{"url": "/jobs/a"}', ("", "HTTP 200")),
        (202, b"<html>", ("", "response body is not JSON")),
        (202, b'{"job_id": "a"}', ("", "response has no job 'url'")),
    ],
)
def test_accepted_job_url(status: int, content: bytes, answer: tuple[str, str | None]) -> None:
    assert accepted_job_url(status, content) == answer


@pytest.mark.parametrize(
    ("job", "problem"),
    [
        ({"status": "finished", "result": {"predictions": [{}, {}]}}, None),
        ({"status": "failed", "error": {"code": "worker_lost"}}, "job failed: worker_lost"),
        ({"status": "finished", "result": None}, "finished job has no 'predictions' list"),
        ({"status": "finished", "result": {"predictions": [{}]}}, "expected 2 predictions, got 1"),
    ],
)
def test_job_problem(job: dict[str, Any], problem: str | None) -> None:
    assert job_problem(job, expected=2) == problem


def test_user_seeds_differ_per_user_and_worker() -> None:
    local = SimpleNamespace(runner=SimpleNamespace(worker_index=0))
    worker = SimpleNamespace(runner=SimpleNamespace(worker_index=3))
    seeds = [user_seed(42, local) for _ in range(5)] + [user_seed(42, worker) for _ in range(5)]
    assert len(set(seeds)) == 10
    assert user_seed(42, SimpleNamespace(runner=None)) >= 42


def test_fire_timing_reports_a_request_event() -> None:
    fired: list[dict[str, Any]] = []
    environment = SimpleNamespace(
        events=SimpleNamespace(request=SimpleNamespace(fire=lambda **kw: fired.append(kw)))
    )
    fire_timing(environment, "E2E", "job completed", started=0.0, exception="timed out")
    (event,) = fired
    assert event["request_type"] == "E2E"
    assert event["name"] == "job completed"
    assert event["response_time"] > 0
    assert event["exception"] == "timed out"


def _list_user_classes(locustfile: str, cwd: Path, pattern: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PATTERN")}
    env["PATTERN"] = pattern
    return subprocess.run(
        [sys.executable, "-c", LIST_USER_CLASSES, locustfile],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(params=["repo", "container"])
def locustfile_site(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path]:
    """The locustfile and working dir: the repo from elsewhere, or a copy mounted at app/."""
    if request.param == "repo":
        return str(REPO_ROOT / "loadtests" / "locustfile.py"), tmp_path
    app = tmp_path / "app"
    shutil.copytree(
        REPO_ROOT / "loadtests", app / "loadtests", ignore=shutil.ignore_patterns("results")
    )
    return "loadtests/locustfile.py", app


def test_locustfile_exposes_only_the_selected_class(locustfile_site: tuple[str, Path]) -> None:
    result = _list_user_classes(*locustfile_site, pattern="web-single")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "PredictUser"


@pytest.mark.parametrize(("pattern", "user"), [("async", "AsyncUser"), ("batch", "BatchUser")])
def test_the_queue_patterns_scenarios_are_registered(pattern: str, user: str) -> None:
    result = _list_user_classes(
        str(REPO_ROOT / "loadtests" / "locustfile.py"), REPO_ROOT, pattern=pattern
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == user


def test_locustfile_rejects_an_unknown_pattern() -> None:
    result = _list_user_classes(
        str(REPO_ROOT / "loadtests" / "locustfile.py"), REPO_ROOT, pattern="nope"
    )
    assert result.returncode == 1
    assert "unknown PATTERN 'nope'; known patterns:" in result.stderr
    assert "web-single" in result.stderr
