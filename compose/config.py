"""A pattern's compose model as ``docker compose config`` resolves it (standard library only).

Used by the Kubernetes generator (``compose/k8s.py``), the replicas knob
(``compose/scale.py``) and the tests; needs the docker CLI with the compose v2
plugin, not an engine.
"""

import json
import os
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PATTERNS_DIR = ROOT / "patterns"
SECRETS = ("REDIS_PASSWORD", "POSTGRES_PASSWORD")  # the ones compose/compose.sh makes

Doc = dict[str, Any]


class ComposeError(Exception):
    """``docker compose config`` could not run or refused the file."""


def sentinel(name: str) -> str:
    """The value compose is given for the secret ``name`` (the generator maps it back)."""
    return f"k8s-secret-{name}"


def patterns() -> list[str]:
    """The patterns: folders of patterns/ with a compose file."""
    return sorted(p.parent.name for p in PATTERNS_DIR.glob("*/compose.yaml"))


def compose_config(pattern: str, profiles: str = "") -> Doc:
    """``docker compose config`` of the pattern, with defaults only and sentinel secrets.

    ``profiles`` adds the services of those profiles (``"*"``: all of them).
    """
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
    env |= {name: sentinel(name) for name in SECRETS}
    compose = os.environ.get("DOCKER_COMPOSE", "docker compose").split()
    command = [
        *compose,
        "--env-file",
        os.devnull,
        "-f",
        str(PATTERNS_DIR / pattern / "compose.yaml"),
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
        raise ComposeError("needs the docker CLI with the compose v2 plugin (no engine)") from exc
    if done.returncode != 0:
        raise ComposeError(f"docker compose config failed for {pattern}: {done.stderr.strip()}")
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
