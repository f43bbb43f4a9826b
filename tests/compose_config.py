"""Every pattern's compose model as ``docker compose config`` resolves it (no daemon needed).

The patterns are the folders of ``patterns/`` with a ``compose.yaml``, found, not listed,
so a new pattern is covered by whatever uses this module (the least-privilege test, the
chaos suite). ``public`` services are the ones that publish a port; everything else is
internal.
"""

import functools
import json
import os
import subprocess
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Stand-in passwords: the config must carry these, taken from the environment.
DUMMY_SECRETS = {"REDIS_PASSWORD": "redis-from-env", "POSTGRES_PASSWORD": "postgres-from-env"}


def patterns() -> list[str]:
    """The pattern folders that have a compose file, sorted."""
    return sorted(p.parent.name for p in (REPO_ROOT / "patterns").glob("*/compose.yaml"))


def compose_cli_available() -> bool:
    """True when ``docker compose`` (the v2 CLI plugin) runs here."""
    try:
        result = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, check=False, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


@functools.cache
def compose_config(pattern: str, profiles: str = "*") -> dict[str, Any]:
    """``docker compose config`` of ``pattern`` (services of ``profiles``) as a dict.

    Runs with the environment a user has by default: no API_BIND, API_PORT or
    image overrides, and the passwords from :data:`DUMMY_SECRETS`.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("API_", "MLSP_", "COMPOSE_")) and not key.endswith("_IMAGE")
    }
    env.update(DUMMY_SECRETS)
    args = ["docker", "compose", "-f", str(REPO_ROOT / "patterns" / pattern / "compose.yaml")]
    if profiles:
        args += ["--profile", profiles]
    result = subprocess.run(
        [*args, "config", "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    if result.returncode != 0:
        raise RuntimeError(f"docker compose config of {pattern} failed:\n{result.stderr}")
    return json.loads(result.stdout)


def internal_services(pattern: str) -> list[str]:
    """The long-running services that publish no port (the chaos suite's targets).

    Leaves out one-shot services (``restart: "no"`` or no restart policy: image builds,
    the model export, migrations) and services behind a profile (tools, load, observe).
    """
    config = compose_config(pattern, profiles="")
    return sorted(
        name
        for name, service in config["services"].items()
        if not service.get("ports") and service.get("restart") not in (None, "no")
    )


def public_services(pattern: str) -> list[str]:
    """The services of ``pattern``'s default stack that publish a port."""
    config = compose_config(pattern, profiles="")
    return sorted(name for name, service in config["services"].items() if service.get("ports"))
