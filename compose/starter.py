"""Copy one pattern out as a standalone project: ``make starter PATTERN=.. DEST=..``.

    python3 compose/starter.py PATTERN DEST [--force]

The starter holds the pattern's services, compose file, README and tests; the
modules of ``shared/`` its services import (followed transitively); the
model-export step with the training code of the models the pattern exports and
its tests name (see :func:`model_modules`); the compose pieces it includes with
their Dockerfile and offline stand-ins; the Kubernetes generator (``make k8s`` writes the
tree, which is not copied); the Locust harness; a Makefile with up/down/ps/logs/load/test/e2e. No path in it points outside it. Standard library only, so it runs
before anything is installed.
"""

from __future__ import annotations

import argparse
import ast
import posixpath
import re
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IGNORE = shutil.ignore_patterns(
    "__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache", "results", "reports", "*_pb2*"
)
# Always part of a starter: they are what every pattern is built and tested with.
ALWAYS = [
    "compose/Dockerfile",
    "compose/compose.sh",
    "compose/edge",
    "compose/edge.yaml",
    "compose/locks.py",
    "compose/secrets.sh",
    "compose/probe.sh",
    "compose/service.yaml",
    "compose/offline",
    "compose/observe",
    "compose/requirements",
    "models/__init__.py",
    "models/add.py",
    "models/export.py",
    "models/specs.py",
    "models/trained.py",
    "loadtests",
    "conftest.py",
    "shared/kit/probe.py",  # conftest.py waits for predictors with it
    "tests/__init__.py",
    "tests/api_fuzz.py",
    "tests/bad_input.py",
    "tests/compose_stack.py",
    "tests/docs_pages.py",
    "tests/local_servers.py",
    "tests/test_locks.py",
    "tests/metrics_text.py",
    ".dockerignore",
    ".gitignore",
    "pyproject.toml",
    "LICENSE",
]

# The Kubernetes generator: a starter writes its tree from its own compose file (make k8s).
K8S_GENERATOR = ["compose/k8s", "compose/config.py"]


class StarterError(Exception):
    """The starter cannot be written as asked."""


def shared_modules(
    sources: list[Path], run: set[str] = frozenset(), package: str = "shared"
) -> set[str]:
    """``run`` and the ``<package>.*`` modules the sources import, followed through it."""
    pending = list(sources) + [p for p in map(_module_path, run) if p is not None]
    found: set[str] = {package, *run}
    seen: set[Path] = set()
    while pending:
        source = pending.pop()
        if source in seen or not source.is_file():
            continue
        seen.add(source)
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                if not name.startswith(f"{package}."):
                    continue
                path = _module_path(name)
                if path is not None and name not in found:
                    found.add(name)
                    pending.append(path)
    return found


def _module_path(name: str) -> Path | None:
    base = REPO.joinpath(*name.split("."))
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def modules_run_by(pattern_dir: Path, pieces: list[Path]) -> set[str]:
    """The ``shared.*`` modules that Dockerfiles and compose files run or name."""
    texts = [p.read_text() for p in pattern_dir.rglob("Dockerfile")]
    texts += [p.read_text() for p in pieces if p.is_file()]
    texts.append((pattern_dir / "compose.yaml").read_text())
    names = {n for text in texts for n in re.findall(r"\b(shared(?:\.\w+)+)", text)}
    return {name for name in names if _module_path(name) is not None}


def model_modules(compose_text: str, tests: list[Path]) -> set[str]:
    """The training modules (``models.*``) of the models a pattern exports (``--only`` in its
    compose file) and of those its tests name in a string, from ``TRAINING`` in models/specs.py.
    """
    specs = REPO / "models" / "specs.py"
    table = next(
        node.value
        for node in ast.parse(specs.read_text()).body
        if isinstance(node, ast.AnnAssign)
        and isinstance(node.target, ast.Name)
        and node.target.id == "TRAINING"
    )
    training: dict[str, tuple[str, str, str]] = ast.literal_eval(table)
    only = re.search(r'"--only",\s*([^\]]*)\]', compose_text)
    names = set(re.findall(r'"([\w.:-]+)"', only.group(1))) if only else set(training)
    texts = [
        node.value
        for test in tests
        for node in ast.walk(ast.parse(test.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]
    for name in training:
        if any(re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text) for text in texts):
            names.add(name)
    return {training[name][1] for name in names if name in training}


def shared_files(modules: set[str]) -> set[Path]:
    """The files of those modules, with their packages' ``__init__.py`` and the proto."""
    files: set[Path] = set()
    for name in modules:
        path = _module_path(name)
        if path is None:
            continue
        files.add(path)
        parts = name.split(".")
        for depth in range(1, len(parts)):
            init = REPO.joinpath(*parts[:depth], "__init__.py")
            if init.is_file():
                files.add(init)
    if any(name.startswith("shared.v2") for name in modules):
        files |= {p for p in (REPO / "shared" / "v2").rglob("*") if _is_source(p)}
    return files


def _is_source(path: Path) -> bool:
    return path.is_file() and "__pycache__" not in path.parts and "_pb2" not in path.name


def included_compose_files(compose_text: str) -> list[str]:
    """The compose pieces a pattern's compose file includes or extends (repo-relative)."""
    found = re.findall(r"\.\./\.\./(compose/[\w.-]+\.ya?ml)", compose_text)
    pieces = set(found)
    for piece in list(pieces):  # pieces may extend other pieces, e.g. predictor -> service
        for extended in re.findall(r"file:\s*([\w.-]+\.ya?ml)", (REPO / piece).read_text()):
            pieces.add(f"compose/{extended}")
    return sorted(pieces)


MAKEFILE = """\
# {pattern}: a standalone ML serving service, ejected from the ML serving patterns playground.
SHELL := /bin/bash
.DEFAULT_GOAL := help
USERS ?= 16
DURATION ?= 30s
API_PORT ?= 8000
PYTHON ?= python3
VENV ?= .venv
# EDGE=1: HAProxy in front of the api (compose/edge.yaml): it takes API_PORT and refuses at once,
# in C, what the api cannot serve in time (EDGE_MAXCONN, EDGE_MAX_QUEUE, EDGE_QUEUE_TIMEOUT_MS).
EDGE ?=
EDGE_FILE := $(if $(filter 1,$(EDGE)),-f compose/edge.yaml)
COMPOSE := ./compose/compose.sh -f compose.yaml $(EDGE_FILE)
export API_PORT

.PHONY: help
help: ## Show this help
\t@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{{printf "  make %-8s %s\\n", $$1, $$2}}'

.PHONY: check-edge
check-edge:
\t@case "$(EDGE)" in ""|0|1) ;; *) echo "EDGE='$(EDGE)': give 1 (HAProxy in front of the api) or 0/nothing (none)" >&2; exit 2;; esac

.PHONY: up
up: check-edge ## Build and start the stack (EDGE=1: HAProxy in front), wait until healthy, print the URL
\t$(COMPOSE) up --build --wait --remove-orphans
\t@echo "{pattern} is up$(if $(EDGE_FILE), behind the edge (HAProxy)): http://127.0.0.1:$(API_PORT)  (docs: http://127.0.0.1:$(API_PORT)/docs)"

.PHONY: down
down: ## Stop the stack and remove its containers and volumes
\t$(COMPOSE) down --volumes --remove-orphans

.PHONY: ps
ps: ## Show the containers
\t$(COMPOSE) ps --all

.PHONY: logs
logs: ## Follow the logs (JSON lines)
\t$(COMPOSE) logs --follow --no-log-prefix

.PHONY: model-add
model-add: $(VENV)/.installed ## Bring your own model: FILE=x.onnx or x.joblib NAME=n [LABELS="a b c"]
\t@$(VENV)/bin/python -m models.add '$(FILE)' --name '$(NAME)' $(if $(LABELS),--labels $(LABELS))

.PHONY: load
load: up ## Headless Locust (USERS, DURATION); report in loadtests/results/
\t@mkdir -p loadtests/results
\t$(COMPOSE) run --rm --build -e PATTERN={pattern} loadtest --users $(USERS) --spawn-rate $(USERS) \\
\t  --run-time $(DURATION) --host http://$(if $(EDGE_FILE),edge,api):8080 --out /results/{pattern}

STUBS := {stubs}
$(VENV)/.installed: compose/requirements/dev.lock
\t$(PYTHON) -m venv $(VENV)
\t$(VENV)/bin/pip install -q --require-hashes --no-deps -r compose/requirements/dev.lock
\t@touch $@

.PHONY: lock
lock: $(VENV)/.installed ## Compile compose/requirements/*.in into *.lock (UPGRADE=1: newest)
\t$(VENV)/bin/python compose/locks.py compile --uv $(VENV)/bin/uv $(if $(UPGRADE),--upgrade)

.PHONY: k8s
k8s: $(VENV)/.installed ## Kubernetes: write the kustomize tree of compose.yaml into DEST (k8s/)
\t$(VENV)/bin/python -m compose.k8s generate {pattern} --compose-file compose.yaml --dest $(or $(DEST),k8s)

.PHONY: test
test: $(VENV)/.installed $(STUBS) ## Unit tests (no Docker needed)
\t$(VENV)/bin/pytest -m "not e2e"

.PHONY: e2e
e2e: $(VENV)/.installed $(STUBS) ## End-to-end tests against the real stack
\t$(VENV)/bin/pytest -m e2e
"""
STUBS_RULE = """
shared/v2/proto/inference_pb2.py: shared/v2/proto/inference.proto $(VENV)/.installed
\t$(VENV)/bin/python -m shared.v2.codegen
"""

OWN_MODEL = """

## Serving your own model

The model repository is made by `models/export.py` and mounted read-only at
`/models` in every service, laid out as `<name>/<version>/model.onnx` +
`metadata.json`. To serve your model:

1. Bring the file: `make model-add FILE=model.onnx NAME=mine` (an `.onnx`
   classifier, or a scikit-learn classifier saved with joblib, converted with
   skl2onnx and checked against scikit-learn on sample rows) writes
   `models/added/mine/<version>/` with `metadata.json` read from the graph,
   sha256 included (`LABELS="a b c"` names the classes). It refuses in one
   line what the services could not serve: a regressor, a free number of
   features, probabilities as ZipMap maps, an estimator skl2onnx cannot
   convert. Or train it here: name your training function in `TRAINING` in
   `models/specs.py` (the export checks ONNX against scikit-learn and trains
   again only when the code changes).
2. Add the model's name after `--only` in the `model-export` command of
   `compose.yaml`.
3. Point the services at it with `MODEL_NAME` (and `MODELS` for a predictor).

At start every service that loads the model checks it and refuses to start
otherwise (`refusing to start: ...` in its log): the file's sha256 must match
the metadata, the ONNX graph's input and output names, dtypes and shapes must
be the ones the metadata declares, and a classifier needs one label per
class. The api decodes `{"instances": [...]}` into float32 rows of the
declared width, so a model with another input shape works unchanged.
"""


API_KEYS_HOWTO = """
## Requiring an API key

Keys are off here. Turn them on before the api listens on anything but 127.0.0.1:

    export API_KEYS=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
    make up        # or put API_KEYS=... in .env; several keys, comma-separated, to rotate

then send the requests shown above with `-H "Authorization: Bearer $API_KEYS"`
(or `-H "X-API-Key: $API_KEYS"`). Without a known key every route answers 401 with the JSON
error and `WWW-Authenticate`, except the health probes, `/docs` and `/metrics`
(`METRICS_NEED_KEY=true` closes `/metrics` as well). In a deployment, `API_KEYS_FILE`
can name a mounted file of keys (one a line) instead. Keys are compared in constant time and
never logged. Middleware you add to the app (`app.add_middleware(CORSMiddleware, ...)`,
your own authentication) runs on every route, `/predict` included (`shared/kit/app.py`).

## Refusing the excess in front of the api

`make up EDGE=1` (and `make load EDGE=1`) puts HAProxy in front of the api
(`compose/edge.yaml`): it takes `API_PORT`, lets `EDGE_MAXCONN` (64) requests reach the
api at once and `EDGE_MAX_QUEUE` (64) wait at most `EDGE_QUEUE_TIMEOUT_MS` (1000), and
answers any more at once, in C, with 503, `Retry-After` and the api's JSON error
(`compose/edge/haproxy.cfg`). The api's own bound, `MAX_REQUESTS_IN_FLIGHT`, works
without it.
"""


def write_starter(pattern: str, dest: Path, force: bool = False) -> list[Path]:
    """Write the starter of ``pattern`` into ``dest``; returns the files written."""
    source = REPO / "patterns" / pattern
    if not (source / "compose.yaml").is_file():
        known = sorted(p.parent.name for p in (REPO / "patterns").glob("*/compose.yaml"))
        raise StarterError(f"unknown pattern {pattern!r}; choose one of: {', '.join(known)}")
    if dest.resolve().is_relative_to(REPO):
        raise StarterError(f"{dest} is inside the playground; choose a folder outside it")
    if dest.exists() and any(dest.iterdir()) and not force:
        raise StarterError(f"{dest} is not empty; use FORCE=1 (--force) to write over it")
    dest.mkdir(parents=True, exist_ok=True)

    compose_text = (source / "compose.yaml").read_text()
    copies = [*ALWAYS, *included_compose_files(compose_text)]
    sources = [p for p in source.rglob("*.py") if "tests" not in p.parts]
    tests = [p for p in source.rglob("*.py") if "tests" in p.parts]
    models = shared_modules([], model_modules(compose_text, tests), package="models")
    sources += [path for path in map(_module_path, models) if path is not None]
    sources += [REPO / rel for rel in ALWAYS if rel.startswith("models/")]
    sources += [p for p in (REPO / "loadtests").rglob("*.py")]
    for rel in sorted(set(copies)):
        _copy(REPO / rel, dest / rel)
    # The shared Dockerfile names shared.v2 only to generate stubs when it is there.
    pieces = [REPO / rel for rel in copies if rel.endswith((".yaml", ".yml"))]
    run = modules_run_by(source, pieces)
    # The helpers of tests/ the pattern's tests import (the chaos load, say), and the
    # modules of compose/ those helpers import in turn.
    test_helpers = shared_modules(tests, package="tests")
    helper_files = [path for path in map(_module_path, test_helpers) if path is not None]
    tooling = shared_modules([*helper_files, REPO / "tests" / "test_locks.py"], package="compose")
    for path in sorted(
        shared_files(shared_modules(sources, run) | models | test_helpers | tooling)
    ):
        _copy(path, dest / path.relative_to(REPO))
    for rel in K8S_GENERATOR:
        _copy(REPO / rel, dest / rel)
    for item in source.iterdir():
        if item.name not in ("compose.yaml", "k8s"):  # k8s/: made by `make k8s`, not copied
            _copy(item, dest / item.name)
    project = re.sub(r"[^a-z0-9_-]", "-", dest.resolve().name.lower()).strip("-") or pattern
    compose_text = re.sub(r"(?m)^name: .*$", f"name: {project}", compose_text)
    (dest / "compose.yaml").write_text(rehome(compose_text, pattern))
    edge = dest / "compose" / "edge.yaml"  # laid over compose.yaml, so relative to the root
    edge.write_text(rehome(edge.read_text(), pattern))
    if (dest / "Dockerfile").is_file():  # a pattern's own recipe, built from the repository root
        (dest / "Dockerfile").write_text(rehome((dest / "Dockerfile").read_text(), pattern))
    uses_v2 = (dest / "shared" / "v2").is_dir()
    stubs = "shared/v2/proto/inference_pb2.py" if uses_v2 else ""
    makefile = MAKEFILE.format(pattern=pattern, stubs=stubs) + (STUBS_RULE if uses_v2 else "")
    if (dest / f"{pattern}.mk").is_file():  # the pattern's own commands (make canary-promote)
        makefile += f"\n# {pattern}'s own commands.\ninclude {pattern}.mk\n"
    (dest / "Makefile").write_text(makefile)
    readme = (source / "README.md").read_text() if (source / "README.md").is_file() else ""
    readme = readme.replace("make up PATTERN=" + pattern, "make up").replace(
        f"patterns/{pattern}/", ""
    )
    readme = re.sub(r"make (\w+)\s+PATTERN=" + re.escape(pattern), r"make \1", readme)
    readme = playground_links_as_text(readme, pattern)
    (dest / "README.md").write_text(
        f"{readme.rstrip()}\n{OWN_MODEL}{API_KEYS_HOWTO}\n"
        "Ejected from the ML serving patterns playground "
        f"with `make starter PATTERN={pattern}`.\n"
    )
    _check_self_contained(dest, pattern)
    return sorted(p for p in dest.rglob("*") if p.is_file())


OUTSIDE_CONTEXT = re.compile(r"(?m)^\s*context:\s*\.\./\.\.\s*$")


def rehome(text: str, pattern: str) -> str:
    """Paths of a pattern's compose file or Dockerfile as seen from the starter's root.

    In the playground they are relative to ``patterns/<pattern>/`` (``../../compose/``,
    ``../../loadtests``, a build ``context: ../..`` that is the repository root) or to the root
    (``patterns/<pattern>/api``); in a starter the pattern's folder is the root.
    """
    text = re.sub(r"\.\./\.\./compose\b", "compose", text)
    text = re.sub(r"\.\./\.\./loadtests\b", "./loadtests", text)  # a bind mount needs its ./
    text = OUTSIDE_CONTEXT.sub(lambda m: m.group(0).replace("../..", "."), text)
    return text.replace(f"patterns/{pattern}/", "")


def _copy(src: Path, dst: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dst, ignore=IGNORE, dirs_exist_ok=True)
    elif src.is_file():
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)


_RELATIVE_LINK = re.compile(r"\[(?P<text>[^\]]+)\]\((?P<target>\.\./[^)\s]*)\)")


def playground_links_as_text(readme: str, pattern: str) -> str:
    """A pattern README's links out of its folder (reports, docs, other patterns) as
    text naming the playground's file, since the starter has none of them."""

    def as_text(link: re.Match[str]) -> str:
        where = posixpath.normpath(f"patterns/{pattern}/{link['target'].partition('#')[0]}")
        return f"{link['text']} (the playground's `{where}`)"

    return _RELATIVE_LINK.sub(as_text, readme)


def _check_self_contained(dest: Path, pattern: str) -> None:
    """Refuse a starter whose text still points outside it.

    A relative path up two folders or a build context of ``../..`` points outside.
    So does the playground's own absolute path, where the starter holds it more often
    than the file it was copied from: a copied file may name a container path that
    happens to spell the checkout's (``/app`` in ``WORKDIR /app``).
    """
    for path in dest.rglob("*"):
        if path.suffix in {".py", ".yaml", ".sh", ".md"} or path.name in {"Makefile", "Dockerfile"}:
            text = path.read_text()
            rel = path.relative_to(dest)
            origin = next(
                (p for p in (REPO / rel, REPO / "patterns" / pattern / rel) if p.is_file()), None
            )
            original = origin.read_text() if origin is not None else ""
            if (
                "../../" in text
                or OUTSIDE_CONTEXT.search(text)
                or mentions_of(REPO, text) > mentions_of(REPO, original)
            ):
                raise StarterError(f"{path} points outside the starter")


def mentions_of(folder: Path, text: str) -> int:
    """How often ``text`` names ``folder`` or a path in it (``/p`` is not in ``/predict``)."""
    return len(re.findall(rf"(?<![\w.~/-]){re.escape(str(folder))}(?![\w.-])", text))


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pattern")
    parser.add_argument("dest", type=Path)
    parser.add_argument("--force", action="store_true", help="write into a non-empty DEST")
    args = parser.parse_args(argv)
    try:
        files = write_starter(args.pattern, args.dest, args.force)
    except StarterError as exc:
        print(f"starter: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(files)} files to {args.dest}; next: cd {args.dest} && make up")
    return 0


if __name__ == "__main__":
    sys.exit(main())
