"""A pattern's compose model as ``docker compose config`` resolves it (standard library only).

Used by the Kubernetes generator (``compose/k8s/``), the replicas knob
(``compose/scale.py``) and the tests; needs a compose CLI (the pinned wheel in
.venv, or the docker compose v2 plugin), not an engine.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PATTERNS_DIR = ROOT / "patterns"
#: The edge, laid over a pattern's compose file by `make up EDGE=1` (HAProxy in front of the api).
EDGE_FILE = ROOT / "compose" / "edge.yaml"
SECRETS = ("REDIS_PASSWORD", "POSTGRES_PASSWORD")  # the ones compose/compose.sh makes
# Secrets a user may set (empty in compose by default): in Kubernetes an optional key of the
# Secret, so that adding it there turns the feature on (API_KEYS: shared/kit/api_keys.py).
OPTIONAL_SECRETS = ("API_KEYS",)

Doc = dict[str, Any]


class ComposeError(Exception):
    """``docker compose config`` could not run or refused the file."""


def sentinel(name: str) -> str:
    """The value compose is given for the secret ``name`` (the generator maps it back)."""
    return f"k8s-secret-{name}"


def patterns() -> list[str]:
    """The patterns: folders of patterns/ with a compose file."""
    return sorted(p.parent.name for p in PATTERNS_DIR.glob("*/compose.yaml"))


def compose_command() -> list[str]:
    """The compose CLI that reads the compose files (``config`` needs no engine).

    ``DOCKER_COMPOSE`` when set; else the ``docker-compose`` that ``make test`` installs
    beside the running Python in its virtual environment (compose/requirements/dev.in),
    so every machine reads the compose files with the same pinned version; else
    ``docker compose``.
    """
    if "DOCKER_COMPOSE" in os.environ:
        return os.environ["DOCKER_COMPOSE"].split()
    pinned = Path(sys.executable).parent / "docker-compose"
    return [str(pinned)] if pinned.is_file() else ["docker", "compose"]


def compose_config(pattern: str, profiles: str = "", *, edge: bool = False) -> Doc:
    """``docker compose config`` of the pattern, with defaults only and sentinel secrets.

    ``profiles`` adds the services of those profiles (``"*"``: all of them); ``edge``, the
    edge laid over it (:data:`EDGE_FILE`).
    """
    overlays = (EDGE_FILE,) if edge else ()
    return compose_file_config(PATTERNS_DIR / pattern / "compose.yaml", profiles, overlays)


def compose_file_config(
    compose_file: Path, profiles: str = "", overlays: tuple[Path, ...] = ()
) -> Doc:
    """``docker compose config`` of any compose file (a pattern's, an ejected starter's),
    with ``overlays`` laid over it, defaults only and sentinel secrets."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
    env |= {name: sentinel(name) for name in (*SECRETS, *OPTIONAL_SECRETS)}
    command = [
        *compose_command(),
        "--env-file",
        os.devnull,
        *(arg for path in (compose_file, *overlays) for arg in ("-f", str(path))),
        *(["--profile", profiles] if profiles else []),
    ]
    try:
        done = subprocess.run(
            [*command, "config", "--format", "json"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError as exc:
        raise ComposeError(
            "needs the compose CLI: `make test` installs docker-compose into .venv "
            "(compose/requirements/dev.in), or install the docker compose v2 plugin"
        ) from exc
    if done.returncode != 0:
        raise ComposeError(
            f"docker compose config failed for {compose_file}: {done.stderr.strip()}"
        )
    return json.loads(done.stdout)


def scalable_services(config: Doc) -> list[str]:
    """The tiers that may run as several replicas: stateless, long-running, internal.

    ``mlsp/*`` images (Redis and PostgreSQL keep state), with a restart policy (not the
    one-shots), publishing no port (the api's port would clash), and not a scheduler
    (``x-kubernetes.cronjobs``: two would start every run twice).
    """
    schedulers = set((config.get("x-kubernetes") or {}).get("cronjobs") or {})
    return sorted(
        name
        for name, svc in config["services"].items()
        if str(svc.get("image", "")).startswith("mlsp/")
        and svc.get("restart") not in (None, "no")
        and not svc.get("ports")
        and name not in schedulers
    )
