"""Every pattern's compose model as ``docker compose config`` resolves it (no daemon needed).

The patterns are the folders of ``patterns/`` with a ``compose.yaml``, found, not listed,
so a new pattern is covered by whatever uses this module (the least-privilege test, the
chaos suite). Internal services are the ones that publish no port.
"""

import functools
from typing import Any

from compose import config, k8s

#: What the config is given for the passwords: it must carry these, taken from the environment.
DUMMY_SECRETS = {name: k8s.sentinel(name) for name in k8s.SECRETS}
patterns = k8s.patterns


@functools.cache
def compose_config(pattern: str, profiles: str = "*") -> dict[str, Any]:
    """``docker compose config`` of ``pattern`` (services of ``profiles``), cached.

    With the environment a user has by default (no API_BIND, API_PORT or image
    overrides) and the passwords from :data:`DUMMY_SECRETS` (see ``compose/k8s/``).
    """
    return k8s.compose_config(pattern, profiles)


@functools.cache
def edge_config(pattern: str) -> dict[str, Any]:
    """``docker compose config`` of ``pattern`` with the edge laid over it (``EDGE=1``)."""
    return config.compose_config(pattern, edge=True)


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
