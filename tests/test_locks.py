"""The lock files (compose/requirements/*.lock): fresh, in agreement, and what gets installed.

No network: freshness is the inputs' sha256 recorded in each lock, and the pins.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from compose import locks
from conftest import REPO_ROOT

INSTALL = re.compile(r"pip install (?:-q )?--require-hashes --no-deps -r (\S+\.lock)")


def test_every_lock_is_fresh_and_the_locks_agree() -> None:
    problems = locks.check()
    if problems:
        pytest.fail(f"{'; '.join(problems)}: run make lock", pytrace=False)


@pytest.fixture
def requirements(tmp_path: Path) -> Path:
    """A copy of compose/requirements to spoil. The tests look for the problem they made,
    so they hold whether or not the real locks have problems of their own."""
    return Path(shutil.copytree(locks.REQUIREMENTS, tmp_path / "requirements"))


def test_an_input_changed_after_compiling_makes_every_lock_that_includes_it_stale(
    requirements: Path,
) -> None:
    web = requirements / "web.in"
    web.write_text(web.read_text() + "six==1.17.0\n")
    including = [n for n in locks.LOCKED if web in locks.included(requirements / f"{n}.in")]
    assert {"serve", "prep", "dev"} <= set(including)
    problems = locks.check(requirements)
    for name in including:
        assert f"{name}.lock is stale ({name}.in or what it includes changed)" in problems


def test_a_lock_edited_off_its_input_pin_is_caught(requirements: Path) -> None:
    pinned = locks.input_pins(requirements / "serve.in")["onnxruntime"]
    lock = requirements / "serve.lock"
    lock.write_text(lock.read_text().replace(f"\nonnxruntime=={pinned} ", "\nonnxruntime==0.1 "))
    locks.stamp("serve", requirements)  # the inputs did not change: only the pin is off
    problems = locks.check(requirements)
    assert f"serve.lock has onnxruntime==0.1, serve.in pins {pinned}" in problems
    assert f"dev.lock has onnxruntime=={pinned}, serve.lock 0.1" in problems


def test_a_missing_lock_is_named(requirements: Path) -> None:
    (requirements / "image.lock").unlink()
    assert "image.lock is missing" in locks.check(requirements)


def test_every_input_is_locked_or_included_by_one_that_is() -> None:
    covered = {
        path.name
        for name in locks.LOCKED
        for path in locks.included(locks.REQUIREMENTS / f"{name}.in")
    }
    assert {path.name for path in locks.REQUIREMENTS.glob("*.in")} == covered


def test_the_images_grpc_stack_is_one_release_line() -> None:
    """grpcio, its health checking and tools share a minor version; no test client holds
    them back (tritonclient, which needs protobuf < 7, has its own lock)."""
    dev = locks.pins(locks.lock_of("dev").read_text())
    grpc = {name: dev[name] for name in ("grpcio", "grpcio-health-checking", "grpcio-tools")}
    assert len({version.rsplit(".", 1)[0] for version in grpc.values()}) == 1, grpc
    assert "tritonclient" not in dev
    assert "tritonclient" in locks.pins(locks.lock_of("interop").read_text())


def dockerfiles(root: Path) -> list[Path]:
    """Every Dockerfile under ``root`` but those of virtual environments."""
    return [p for p in root.rglob("Dockerfile") if not any(s.startswith(".") for s in p.parts)]


def test_every_pip_install_in_a_dockerfile_is_a_hash_checked_lock() -> None:
    installed = set()
    for dockerfile in dockerfiles(REPO_ROOT):
        text = dockerfile.read_text()
        for line in re.findall(r".*pip install.*", text):
            found = INSTALL.search(line)
            assert found, f"{dockerfile}: {line.strip()}"
            lock = Path(found.group(1)).name
            assert f"COPY compose/requirements/{lock} " in text, f"{dockerfile} installs {lock}"
            installed.add(lock.removesuffix(".lock"))
    assert installed >= {"codegen", "serve", "prep", "export", "load"}


def test_the_dev_venv_installs_the_dev_lock_hash_checked(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    dry = subprocess.run(
        ["make", "-n", f"VENV={venv}", f"{venv}/.installed"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert dry.returncode == 0, dry.stderr
    assert INSTALL.findall(dry.stdout)[0] == "compose/requirements/dev.lock"
    assert "pip install -r" not in dry.stdout
