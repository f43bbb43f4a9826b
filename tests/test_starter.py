"""make starter: a standalone copy of a pattern, with nothing pointing back at the playground."""

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from compose.starter import StarterError, write_starter
from conftest import REPO_ROOT
from tests.compose_stack import free_port


def test_web_single_takes_only_the_shared_modules_it_uses(tmp_path: Path) -> None:
    dest = tmp_path / "my-service"
    write_starter("web-single", dest)
    shared = {p.name for p in (dest / "shared").iterdir()}
    assert {"app.py", "model.py", "schemas.py", "serve.py", "probe.py"} <= shared
    assert (dest / "compose" / "probe.sh").is_file()  # the healthcheck the images carry
    assert "v2" not in shared  # no predictor in this pattern
    assert (dest / "api" / "main.py").is_file()
    assert (dest / "tests" / "test_e2e.py").is_file()
    assert (dest / "models" / "export.py").is_file()
    compose = (dest / "compose.yaml").read_text()
    assert "name: my-service" in compose
    assert "../../" not in compose
    assert "compose/base.yaml" in compose
    assert "make up" in (dest / "README.md").read_text()
    assert "Serving your own model" in (dest / "README.md").read_text()
    assert "\nup: " in (dest / "Makefile").read_text()
    assert (dest / "LICENSE").read_text() == (REPO_ROOT / "LICENSE").read_text()


def test_sync_brings_the_predictor_and_its_pieces(tmp_path: Path) -> None:
    write_starter("sync", tmp_path / "s")
    assert (tmp_path / "s" / "shared" / "v2" / "proto" / "inference.proto").is_file()
    assert (tmp_path / "s" / "compose" / "predictor.yaml").is_file()
    assert "inference_pb2.py" in (tmp_path / "s" / "Makefile").read_text()


def test_a_pattern_built_from_the_repository_root_is_built_from_the_starters(
    tmp_path: Path,
) -> None:
    write_starter("data-cache", tmp_path / "dc")
    compose = (tmp_path / "dc" / "compose.yaml").read_text()
    assert "context: ../.." not in compose
    assert "      context: .\n      dockerfile: Dockerfile\n" in compose
    dockerfile = (tmp_path / "dc" / "Dockerfile").read_text()
    assert "patterns/" not in dockerfile
    assert "COPY compose/requirements/image.txt" in dockerfile
    assert (tmp_path / "dc" / "compose" / "requirements" / "image.txt").is_file()


def test_every_pattern_can_be_ejected(tmp_path: Path) -> None:
    for compose in sorted((REPO_ROOT / "patterns").glob("*/compose.yaml")):
        write_starter(compose.parent.name, tmp_path / compose.parent.name)


@pytest.mark.parametrize(
    ("pattern", "dest", "message"),
    [
        ("nope", "new", "unknown pattern 'nope'; choose one of:"),
        ("web-single", "full", "is not empty; use FORCE=1"),
        ("web-single", "inside", "is inside the playground"),
    ],
)
def test_refusals(tmp_path: Path, pattern: str, dest: str, message: str) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    target = REPO_ROOT / "starter-here" if dest == "inside" else tmp_path / dest
    with pytest.raises(StarterError, match=message):
        write_starter(pattern, target)
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    assert not (REPO_ROOT / "starter-here").exists()


def test_force_writes_over(tmp_path: Path) -> None:
    (tmp_path / "old.txt").write_text("x")
    write_starter("web-single", tmp_path, force=True)
    assert (tmp_path / "compose.yaml").is_file()


def predict(base_url: str) -> dict:
    """One prediction; for a queue pattern (202 + job URL), polled until the job is done."""
    answer = httpx.post(f"{base_url}/predict", json={"instances": [[5.1, 3.5, 1.4, 0.2]]})
    if answer.status_code == 202:
        job_url = base_url + answer.headers["location"]
        deadline = time.monotonic() + 60
        while (job := httpx.get(job_url).json())["status"] != "finished":
            assert job["status"] in ("queued", "started"), job
            assert time.monotonic() < deadline, job
            time.sleep(0.2)
        return job["result"]
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.e2e
@pytest.mark.parametrize("pattern", ["web-single", "sync", "async"])
def test_an_ejected_starter_builds_runs_and_passes_its_tests(
    pattern: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    dest = tmp_path_factory.mktemp("starters") / f"my-{pattern}"
    assert not dest.resolve().is_relative_to(REPO_ROOT)
    make = ["make", "-C", str(dest), "--no-print-directory"]
    subprocess.run(
        ["make", "-C", str(REPO_ROOT), "starter", f"PATTERN={pattern}", f"DEST={dest}"], check=True
    )
    port = free_port()
    env = {**os.environ, "API_PORT": str(port), "VENV": str(Path(sys.executable).parents[1])}
    try:
        subprocess.run([*make, "up"], env=env, check=True, capture_output=True, timeout=600)
        assert predict(f"http://127.0.0.1:{port}")["predictions"][0]["label"] == "setosa"
        tests = subprocess.run(
            [*make, "test"], env=env, capture_output=True, text=True, timeout=600, check=False
        )
        assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]
        assert " passed" in tests.stdout
    finally:
        subprocess.run([*make, "down"], env=env, capture_output=True, check=False)
