"""Names, limits and small conversions every part of the Kubernetes generator uses."""

import math
import re
from collections.abc import Iterator
from pathlib import Path

from compose import config
from compose.config import PATTERNS_DIR, SECRETS, Doc, sentinel

HTTP_PORT = 8080  # every mlsp/* service: /health/live, /health/ready and /metrics (shared/)
SECRET_NAME = "mlsp-secrets"
# Users named in compose that Kubernetes needs as numbers (runAsNonRoot): the official images'.
NAMED_USERS = {"redis": 999, "postgres": 999}
APP_USER = 10001  # the user of the mlsp/* images (compose/Dockerfile)
STORAGE = "1Gi"  # size of each PersistentVolumeClaim (compose volumes have none)
HPA_MAX_REPLICAS = 4
HPA_CPU_PERCENT = 70
# Called tiers run at least this many pods in a cluster: with one, every node drain or crash
# is an outage (compose keeps 1 on a laptop; a compose `deploy.replicas` above it wins).
MIN_CALLED_REPLICAS = 2
# KEDA (https://keda.sh) scales RQ workers on their queue's length: a replica per this many
# jobs waiting, up to HPA_MAX_REPLICAS. RQ keeps a queue's waiting jobs in the list rq:queue:<name>.
KEDA_JOBS_PER_REPLICA = 10


class K8sError(Exception):
    """The compose file uses something the generator cannot map, or a tool is missing."""


def compose_config(pattern: str, profiles: str = "") -> Doc:
    """:func:`compose.config.compose_config`, its failure as a :class:`K8sError`."""
    return compose_file_config(PATTERNS_DIR / pattern / "compose.yaml", profiles)


def compose_file_config(compose_file: Path, profiles: str = "") -> Doc:
    """:func:`compose.config.compose_file_config`, its failure as a :class:`K8sError`."""
    try:
        return config.compose_file_config(compose_file, profiles)
    except config.ComposeError as exc:
        raise K8sError(str(exc)) from exc


def seconds(duration: str | float | None, default: int = 0) -> int:
    """Whole seconds (at least 1 when not zero) of a compose duration like ``1m30s``."""
    if duration is None:
        return default
    if isinstance(duration, int | float):
        return max(1, math.ceil(duration)) if duration else 0
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6, "ns": 1e-9}
    total = sum(float(n) * units[u] for n, u in re.findall(r"([\d.]+)(h|ms|us|ns|m|s)", duration))
    return max(1, math.ceil(total)) if total else 0


def cpu_quantity(millicores: int) -> str:
    """``2000`` -> ``"2"``, ``250`` -> ``"250m"``."""
    return str(millicores // 1000) if millicores % 1000 == 0 else f"{millicores}m"


def slug(path: str) -> str:
    """A volume name from a path: ``/dev/shm`` -> ``dev-shm``."""
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "root"


def split_image(image: str) -> tuple[str, str]:
    """``mlsp/sync-api:dev`` -> ``("mlsp/sync-api", "dev")``."""
    name, sep, tag = image.rpartition(":")
    if not sep or "/" in tag:
        return image, "latest"
    return name, tag


def substitute(value: str) -> str:
    """A compose value with each secret's sentinel replaced by ``$(NAME)``."""
    for name in SECRETS:
        value = value.replace(sentinel(name), f"$({name})")
    return value


def labels(name: str) -> dict[str, str]:
    """The labels that select a service's pods."""
    return {"app.kubernetes.io/name": name}


def pod_spec(workload: Doc) -> Doc:
    """The pod spec of a Deployment, StatefulSet, Job or CronJob."""
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]


def containers_of(workload: Doc) -> Iterator[Doc]:
    """Init containers, then containers."""
    spec = pod_spec(workload)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]
