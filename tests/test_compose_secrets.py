"""compose/compose.sh's passwords: one pair per compose project, whatever the checkout.

compose.sh runs here from a copy of the checkout's compose/ folder, against a stand-in
``docker`` that prints what ``docker compose`` would be given, so no engine is needed
and nothing is written into the real checkout.
"""

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import REPO_ROOT

BATCH = str(REPO_ROOT / "patterns" / "batch" / "compose.yaml")
FAKE_DOCKER = """#!/bin/sh
# A stand-in docker: images are there, volumes are those in FAKE_VOLUMES,
# `docker compose ...` prints its arguments and the passwords it was given.
case "$1" in
  volume) for v in $FAKE_VOLUMES; do [ "$v" = "$3" ] && exit 0; done; exit 1 ;;
  compose)
    [ "$2" = version ] && exit 0
    shift
    echo "compose $*"
    echo "REDIS_PASSWORD=$REDIS_PASSWORD"
    echo "POSTGRES_PASSWORD=$POSTGRES_PASSWORD"
    exit "${FAKE_COMPOSE_STATUS:-0}" ;;
esac
exit 0
"""


@pytest.fixture
def machine(tmp_path: Path) -> Path:
    """A folder standing for the machine: bin/docker and the user's state folder."""
    (tmp_path / "bin").mkdir()
    docker = tmp_path / "bin" / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    return tmp_path


def checkout(machine: Path, name: str) -> Path:
    """A checkout's compose/ scripts (what compose.sh needs), copied under ``machine``."""
    root = machine / name
    (root / "compose" / "offline").mkdir(parents=True)
    for rel in ("compose/compose.sh", "compose/secrets.sh", "compose/offline/ensure-docker.sh"):
        shutil.copy2(REPO_ROOT / rel, root / rel)
    return root


def compose_sh(
    machine: Path, root: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run the checkout's compose.sh with the stand-in docker; returns the finished process."""
    environ = {
        key: value
        for key, value in os.environ.items()
        if key not in {"REDIS_PASSWORD", "POSTGRES_PASSWORD", "COMPOSE_PROJECT_NAME"}
    }
    environ |= {
        "PATH": f"{machine / 'bin'}:{os.environ['PATH']}",
        "XDG_STATE_HOME": str(machine / "state"),
        **{name: "stand-in" for name in ("PYTHON_IMAGE", "REDIS_IMAGE", "POSTGRES_IMAGE")},
        "PROMETHEUS_IMAGE": "stand-in",
        **env,
    }
    return subprocess.run(
        [str(root / "compose" / "compose.sh"), *args],
        env=environ,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def passwords(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """The passwords docker compose was given."""
    assert result.returncode == 0, result.stderr
    lines = [line.split("=", 1) for line in result.stdout.splitlines() if "=" in line]
    return {name: value for name, value in lines if name.endswith("_PASSWORD")}


def secrets_file(machine: Path, project: str) -> Path:
    return machine / "state" / "mlsp" / project / "secrets.env"


def test_two_checkouts_of_one_project_use_the_same_passwords(machine: Path) -> None:
    first = passwords(compose_sh(machine, checkout(machine, "one"), "-f", BATCH, "up"))
    second_clone = checkout(machine, "two")
    assert passwords(compose_sh(machine, second_clone, "-f", BATCH, "up")) == first
    assert len(first["POSTGRES_PASSWORD"]) == 32
    assert first["REDIS_PASSWORD"] != first["POSTGRES_PASSWORD"]
    kept = secrets_file(machine, "mlsp-batch")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert not (second_clone / ".mlsp" / "secrets.env").exists()


def test_each_project_has_its_own_passwords(machine: Path) -> None:
    root = checkout(machine, "one")
    default = passwords(compose_sh(machine, root, "-f", BATCH, "up"))
    e2e = passwords(compose_sh(machine, root, "-f", BATCH, "up", COMPOSE_PROJECT_NAME="mlsp-e2e"))
    flag = passwords(compose_sh(machine, root, "-p", "Mlsp-Bench", "-f", BATCH, "up"))
    assert (
        len({default["POSTGRES_PASSWORD"], e2e["POSTGRES_PASSWORD"], flag["POSTGRES_PASSWORD"]})
        == 3
    )
    assert secrets_file(machine, "mlsp-e2e").is_file()
    assert secrets_file(machine, "mlsp-bench").is_file()  # named as compose normalises it


def test_a_password_set_by_the_caller_wins_and_a_first_start_keeps_it(machine: Path) -> None:
    root = checkout(machine, "one")
    given = passwords(compose_sh(machine, root, "-f", BATCH, "up", POSTGRES_PASSWORD="mine"))
    assert given["POSTGRES_PASSWORD"] == "mine"
    assert passwords(compose_sh(machine, root, "-f", BATCH, "up"))["POSTGRES_PASSWORD"] == "mine"


def test_a_checkout_from_before_gives_its_passwords_to_the_project(machine: Path) -> None:
    root = checkout(machine, "old")
    (root / ".mlsp").mkdir()
    (root / ".mlsp" / "secrets.env").write_text("REDIS_PASSWORD=r0\nPOSTGRES_PASSWORD=p0\n")
    assert passwords(compose_sh(machine, root, "-f", BATCH, "up")) == {
        "REDIS_PASSWORD": "r0",
        "POSTGRES_PASSWORD": "p0",
    }
    fresh = checkout(machine, "new")
    assert passwords(compose_sh(machine, fresh, "-f", BATCH, "up"))["POSTGRES_PASSWORD"] == "p0"


@pytest.mark.parametrize(
    ("project", "advice"),
    [
        ("mlsp-batch", "`make down PATTERN=batch WIPE=1`"),
        ("mlsp-e2e-batch", "`COMPOSE_PROJECT_NAME=mlsp-e2e-batch make down PATTERN=batch WIPE=1`"),
    ],
)
def test_a_volume_whose_password_is_lost_stops_a_start_with_one_line(
    machine: Path, project: str, advice: str
) -> None:
    result = compose_sh(
        machine,
        checkout(machine, "one"),
        "-f",
        BATCH,
        "up",
        COMPOSE_PROJECT_NAME=project,
        FAKE_VOLUMES=f"{project}_postgres-data",
    )
    assert result.returncode == 1
    assert result.stdout == ""  # docker compose was not run
    (line,) = result.stderr.splitlines()
    assert f"volume {project}_postgres-data" in line
    assert advice in line
    assert "set POSTGRES_PASSWORD to the old password" in line
    assert not secrets_file(machine, project).exists()


def test_without_the_password_the_stack_can_still_be_taken_down_and_wiped(machine: Path) -> None:
    root = checkout(machine, "one")
    volume = {"FAKE_VOLUMES": "mlsp-batch_postgres-data"}
    result = compose_sh(machine, root, "-f", BATCH, "--profile", "observe", "down", **volume)
    assert "compose -f" in result.stdout
    assert passwords(result)["POSTGRES_PASSWORD"]
    assert not secrets_file(machine, "mlsp-batch").exists()  # made up for this command only
    wiped = compose_sh(machine, root, "-f", BATCH, "down", "--volumes", **volume)
    assert wiped.returncode == 0
    assert passwords(compose_sh(machine, root, "-f", BATCH, "up"))  # starts afresh


def test_the_old_password_given_once_is_kept(machine: Path) -> None:
    root = checkout(machine, "one")
    volume = {"FAKE_VOLUMES": "mlsp-batch_postgres-data"}
    compose_sh(machine, root, "-f", BATCH, "up", POSTGRES_PASSWORD="old", **volume)
    again = passwords(compose_sh(machine, root, "-f", BATCH, "up", **volume))
    assert again["POSTGRES_PASSWORD"] == "old"


def test_removing_the_volumes_forgets_the_passwords(machine: Path) -> None:
    root = checkout(machine, "one")
    compose_sh(machine, root, "-f", BATCH, "up")
    failed = compose_sh(machine, root, "-f", BATCH, "down", "-v", FAKE_COMPOSE_STATUS="1")
    assert failed.returncode == 1
    assert secrets_file(machine, "mlsp-batch").is_file()  # the data may still be there
    kept = compose_sh(machine, root, "-f", BATCH, "down")
    assert kept.returncode == 0
    assert secrets_file(machine, "mlsp-batch").is_file()
    wiped = compose_sh(machine, root, "-f", BATCH, "--profile", "*", "down", "--volumes")
    assert wiped.returncode == 0
    assert not secrets_file(machine, "mlsp-batch").exists()
    assert not secrets_file(machine, "mlsp-batch").parent.exists()
