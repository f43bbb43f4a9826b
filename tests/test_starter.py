"""make starter: a standalone copy of a pattern, with nothing pointing back at the playground."""

import ast
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from compose import k8s, locks
from compose.config import compose_file_config
from compose.starter import StarterError, mentions_of, playground_links_as_text, write_starter
from conftest import REPO_ROOT
from tests.compose_stack import free_port


def test_web_single_takes_only_the_shared_modules_it_uses(tmp_path: Path) -> None:
    dest = tmp_path / "my-service"
    write_starter("web-single", dest)
    shared = {str(p.relative_to(dest / "shared")) for p in (dest / "shared").rglob("*.py")}
    assert {
        "kit/app.py",
        "model/metadata.py",
        "serving/model.py",
        "serving/turn_batch.py",
        "kit/schemas.py",
        "kit/serve.py",
        "kit/probe.py",
    } <= shared
    assert (dest / "compose" / "probe.sh").is_file()  # the healthcheck the images carry
    assert not any(name.startswith("v2/") for name in shared)  # no predictor in this pattern
    assert (dest / "api" / "main.py").is_file()
    assert (dest / "tests" / "test_e2e.py").is_file()
    assert (dest / "models" / "export.py").is_file()
    assert (dest / "compose" / "secrets.sh").is_file()  # compose.sh sources it
    compose = (dest / "compose.yaml").read_text()
    assert "name: my-service" in compose
    assert "../../" not in compose
    assert "compose/base.yaml" in compose
    assert "make up" in (dest / "README.md").read_text()
    readme = (dest / "README.md").read_text()
    assert "Serving your own model" in readme
    assert 'decodes `{"instances": [...]}`' in readme
    assert "make model-add FILE=model.onnx NAME=mine" in readme
    assert (dest / "models" / "add.py").is_file()
    assert "export API_KEYS=" in readme  # how to turn keys on
    assert {"kit/api_keys.py", "kit/hot_routes.py"} <= shared
    assert not {"stores", "jobs", "mechanisms"} & {Path(name).parts[0] for name in shared}
    assert "\nup: " in (dest / "Makefile").read_text()
    assert "\nmodel-add: " in (dest / "Makefile").read_text()
    assert (dest / "LICENSE").read_text() == (REPO_ROOT / "LICENSE").read_text()


@pytest.mark.parametrize(
    ("pattern", "modules"),
    [
        ("web-single", {"iris.py", "iris_data.py"}),
        ("prediction-cache", {"boosted.py", "iris_data.py"}),
        # serial.py: the tests check that a member with other classes (iris-specialist) is refused
        ("parallel", {"ensemble.py", "iris.py", "iris_data.py", "serial.py"}),
        # iris.py: the tests check that a model of other features (iris) is refused
        ("data-cache", {"digits.py", "iris.py", "iris_data.py"}),
        # digits.py, serial.py: the tests check that a candidate with other inputs or classes
        # (digits, iris-gate) is refused
        ("shadow", {"boosted.py", "iris.py", "iris_data.py", "digits.py", "serial.py"}),
        # digits.py, serial.py: the tests check that a canary with other inputs or classes
        # (digits, iris-specialist) is refused
        ("canary", {"iris.py", "iris_data.py", "digits.py", "serial.py"}),
    ],
)
def test_a_starter_takes_only_the_model_code_its_pattern_uses(
    tmp_path: Path, pattern: str, modules: set[str]
) -> None:
    write_starter(pattern, tmp_path / pattern)
    copied = {p.name for p in (tmp_path / pattern / "models").glob("*.py")}
    assert copied == {"__init__.py", "add.py", "export.py", "specs.py", "trained.py"} | modules


def test_a_pattern_with_its_own_commands_brings_them(tmp_path: Path) -> None:
    dest = tmp_path / "c"
    write_starter("canary", dest)
    assert "\ninclude canary.mk\n" in (dest / "Makefile").read_text()
    done = subprocess.run(
        ["make", "-n", "-C", str(dest), "canary-promote", "canary-report"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "compose.sh -f compose.yaml exec -T api python -m admin promote" in done.stdout
    assert "-m loadtests.canary_report --url http://127.0.0.1:8000" in done.stdout
    readme = (dest / "README.md").read_text()
    assert "make canary-promote" in readme


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
    assert "COPY compose/requirements/image.lock" in dockerfile
    assert (tmp_path / "dc" / "compose" / "requirements" / "image.lock").is_file()


@pytest.mark.parametrize("pattern", ["web-single", "sync", "data-cache"])
def test_a_starter_carries_the_locks_its_dockerfiles_and_makefile_install(
    pattern: str, tmp_path: Path
) -> None:
    dest = tmp_path / "s"
    write_starter(pattern, dest)
    requirements = dest / "compose" / "requirements"
    assert locks.check(requirements) == []  # fresh, and in agreement
    installed = {
        lock
        for path in [*dest.rglob("Dockerfile"), dest / "Makefile"]
        for lock in re.findall(r"--require-hashes --no-deps -r (\S+\.lock)", path.read_text())
    }
    assert {"/tmp/requirements/serve.lock", "compose/requirements/dev.lock"} <= installed
    for lock in installed:
        assert (requirements / Path(lock).name).is_file(), lock
    assert "pip install -r" not in (dest / "Makefile").read_text()
    assert "\nlock: " in (dest / "Makefile").read_text()
    assert (dest / "compose" / "locks.py").is_file()
    assert (dest / "tests" / "test_locks.py").is_file()


#: Top-level packages of the playground that a starter's Python may import.
OWN_PACKAGES = {"shared", "models", "loadtests", "tests", "conftest", "compose"}
#: Imports made only when the module they name is there (conftest makes the gRPC stubs).
GUARDED_IMPORTS = {"conftest.py: shared.v2.codegen"}


def unresolved_imports(tree: Path) -> list[str]:
    """``file: module`` for each import of the playground's packages that ``tree`` lacks.

    Generated gRPC stubs (``*_pb2*``) are left out: the starter's Makefile makes them.
    """
    missing = []
    for source in tree.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                if name.split(".")[0] not in OWN_PACKAGES or "_pb2" in name:
                    continue
                base = tree.joinpath(*name.split("."))
                if not (base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()):
                    missing.append(f"{source.relative_to(tree)}: {name}")
    return [item for item in missing if item not in GUARDED_IMPORTS]


@pytest.mark.parametrize("pattern", k8s.patterns())
def test_every_pattern_ejects_to_a_tree_that_builds_from_itself_alone(
    tmp_path: Path, pattern: str
) -> None:
    dest = tmp_path / f"my-{pattern}"
    write_starter(pattern, dest)
    source = REPO_ROOT / "patterns" / pattern
    assert {p.name for p in source.iterdir()} - {"k8s"} <= {p.name for p in dest.iterdir()}
    assert not (dest / "k8s").exists()  # the generator comes along, not a tree
    config = k8s.compose_file_config(dest / "compose.yaml", profiles="*")
    assert config["name"] == f"my-{pattern}"
    builds = {name: s["build"] for name, s in config["services"].items() if "build" in s}
    assert builds, f"{pattern}: no service is built"
    for name, build in builds.items():
        context = Path(build["context"])
        assert context.is_relative_to(dest), f"{name} is built from {context}"
        assert (context / build.get("dockerfile", "Dockerfile")).is_file(), name
    assert unresolved_imports(dest) == []
    assert "PATTERN=" not in (dest / "README.md").read_text().replace(f"PATTERN={pattern}`", "")


@pytest.mark.parametrize("pattern", ["web-single", "async"])
def test_a_starter_brings_the_edge_and_lays_it_over_its_own_compose_file(
    tmp_path: Path, pattern: str
) -> None:
    dest = tmp_path / f"my-{pattern}"
    write_starter(pattern, dest)
    config = compose_file_config(dest / "compose.yaml", overlays=(dest / "compose/edge.yaml",))
    edge, api = config["services"]["edge"], config["services"]["api"]
    assert Path(edge["build"]["context"]) == dest / "compose"
    assert (dest / "compose" / edge["build"]["dockerfile"]).is_file()
    assert (dest / "compose/edge/haproxy.cfg").is_file()
    assert [port["published"] for port in edge["ports"]] == ["8000"]
    assert not api.get("ports")  # reached only through the edge

    def make(*args: str) -> subprocess.CompletedProcess[str]:
        command = ["make", "-C", str(dest), "--no-print-directory", *args]
        return subprocess.run(command, capture_output=True, text=True, check=False)

    assert "-f compose/edge.yaml" not in make("-n", "up").stdout
    assert "-f compose.yaml -f compose/edge.yaml up" in make("-n", "up", "EDGE=1").stdout
    assert "--host http://edge:8080" in make("-n", "load", "EDGE=1").stdout
    refused = make("up", "EDGE=yes")  # refused before anything starts
    assert refused.returncode != 0
    assert "EDGE='yes': give 1" in refused.stderr


@pytest.mark.parametrize("pattern", ["async", "batch"])
def test_a_starter_writes_its_kubernetes_tree_from_its_own_compose_file(
    tmp_path: Path, pattern: str
) -> None:
    dest = tmp_path / f"my-{pattern}"
    write_starter(pattern, dest)
    recipe = (dest / "Makefile").read_text()
    command = (
        f"-m compose.k8s generate {pattern} --compose-file compose.yaml --dest $(or $(DEST),k8s)"
    )
    assert "\nk8s: $(VENV)/.installed ## " in recipe
    assert command in recipe
    done = subprocess.run(
        [sys.executable, *command.replace("$(or $(DEST),k8s)", "k8s").split()],
        cwd=dest,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(dest)},
    )
    assert done.returncode == 0, done.stderr
    rendered = [d for d in yaml.safe_load_all(k8s.kustomize(dest / "k8s" / "local")) if d]
    playground = [d for d in yaml.safe_load_all(k8s.render(pattern)) if d]
    assert rendered == playground


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
@pytest.mark.parametrize("pattern", ["web-single", "sync", "async", "canary"])
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


@pytest.mark.parametrize(
    ("checkout", "text", "names_it"),
    [
        ("/p", "POST /predict", False),
        ("/p", "cd /p/compose", True),
        ("/app", "WORKDIR /app", True),
        ("/app", "/apps/x and /app.old", False),
        ("/tmp/my repo", 'cd "/tmp/my repo"', True),
    ],
)
def test_a_checkout_path_is_found_as_a_path_not_as_a_substring(
    checkout: str, text: str, names_it: bool
) -> None:
    assert (mentions_of(Path(checkout), text) > 0) == names_it


def test_a_checkout_at_a_path_with_spaces_ejects_every_pattern(tmp_path: Path) -> None:
    checkout = tmp_path / "my checkout" / "app"
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True, text=True
    ).stdout.split("\0")
    for rel in filter(None, tracked):
        if (REPO_ROOT / rel).is_file():
            (checkout / rel).parent.mkdir(parents=True, exist_ok=True)
            (checkout / rel).write_bytes((REPO_ROOT / rel).read_bytes())
    patterns = sorted(p.parent.name for p in (checkout / "patterns").glob("*/compose.yaml"))
    for pattern in patterns:
        dest = tmp_path / "starters" / pattern
        done = subprocess.run(
            [sys.executable, "compose/starter.py", pattern, str(dest)],
            cwd=checkout,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert (dest / "compose.yaml").is_file()
        assert str(checkout) not in (dest / "Makefile").read_text()


def test_a_readme_link_out_of_the_pattern_becomes_text_naming_the_playgrounds_file() -> None:
    readme = "See [chaos.md](../../loadtests/reports/chaos.md), [sync](../sync/README.md#settings)."
    assert playground_links_as_text(readme, "web-single") == (
        "See chaos.md (the playground's `loadtests/reports/chaos.md`), "
        "sync (the playground's `patterns/sync/README.md`)."
    )
