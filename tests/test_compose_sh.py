"""compose/compose.sh without Docker, and without GNU coreutils' ``timeout`` (stock macOS).

The script runs from a copy of the checkout's compose/ folder, with a fake ``docker`` first
on PATH that records its calls, and ``DOCKER_COMPOSE=echo`` in place of the real compose.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO_ROOT

# The fake engine: answers `info`, `compose version`, `image inspect` (only the stand-ins
# are there), `volume inspect` (no volume yet) and `pull` (the Python image's pull hangs
# until stopped; the others work).
FAKE_DOCKER = """#!/usr/bin/env bash
echo "$*" >>"$FAKE_DOCKER_LOG"
case "$1 $2" in
  "image inspect") case $3 in mlsp-standin/*) exit 0 ;; *) exit 1 ;; esac ;;
  "volume inspect") exit 1 ;;
  "pull -q")
    if [ "$3" = python:3.11.11-slim-bookworm ]; then
      sleep 300 & sleeper=$!
      trap 'echo "pull of $3 stopped" >>"$FAKE_DOCKER_LOG"; kill $sleeper; exit 143' TERM
      wait $sleeper
    fi ;;
esac
exit 0
"""


def path_without(tmp_path: Path, *left_out: str) -> str:
    """A PATH of one folder linking every command of today's PATH but ``left_out``."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        if not Path(directory).is_dir():
            continue
        for command in Path(directory).iterdir():
            link = folder / command.name
            if command.name in left_out or link.exists() or not os.access(command, os.X_OK):
                continue
            link.symlink_to(command)
    return str(folder)


def run_compose_sh(tmp_path: Path, path: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """compose.sh from a copy of compose/ with the fake docker; returns its run and log."""
    checkout = tmp_path / "checkout"
    shutil.copytree(REPO_ROOT / "compose", checkout / "compose")
    fake = tmp_path / "fake" / "docker"
    fake.parent.mkdir()
    fake.write_text(FAKE_DOCKER)
    fake.chmod(0o755)
    log = tmp_path / "docker.log"
    env = {
        "PATH": f"{fake.parent}{os.pathsep}{path}",
        "HOME": str(tmp_path),
        "FAKE_DOCKER_LOG": str(log),
        "DOCKER_COMPOSE": "echo compose",
        "MLSP_PULL_TIMEOUT_S": "1",
    }
    script = checkout / "compose" / "compose.sh"
    run = subprocess.run(
        [str(script), "-f", "compose.yaml", "up"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,  # only against a hang; the hanging pull is stopped after 1 s
        check=False,
    )
    return run, log


@pytest.mark.parametrize("timeout", ["without timeout", "with timeout"])
def test_a_hanging_pull_is_stopped_and_the_stand_in_used(tmp_path: Path, timeout: str) -> None:
    left_out = ("docker", "timeout") if timeout == "without timeout" else ("docker",)
    path = path_without(tmp_path, *left_out)
    assert (shutil.which("timeout", path=path) is None) == (timeout == "without timeout")
    run, log = run_compose_sh(tmp_path, path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "compose -f compose.yaml up"
    assert "cannot pull python:3.11.11-slim-bookworm; using the local stand-in" in run.stderr
    images = (tmp_path / "checkout" / ".mlsp" / "images.env").read_text().split()
    assert images == [
        "PYTHON_IMAGE=mlsp-standin/python:3.11-bookworm",
        "REDIS_IMAGE=redis:7.4.2-bookworm",
        "POSTGRES_IMAGE=postgres:15.10-bookworm",
        "PROMETHEUS_IMAGE=prom/prometheus:v2.53.3",
    ]
    calls = log.read_text().splitlines()
    assert "pull -q redis:7.4.2-bookworm" in calls
    assert "pull of python:3.11.11-slim-bookworm stopped" in calls
