"""What a container is checked and bounded by: probes from the healthcheck, resources from
``deploy.resources``, the security context from compose's user and hardening options."""

import math
import re

from compose.config import Doc
from compose.k8s.common import APP_USER, HTTP_PORT, NAMED_USERS, K8sError, cpu_quantity, seconds

# Healthcheck commands that take one URL: compose/probe.sh (in every image as `probe`),
# and `python -m shared.kit.probe`, which also speaks grpc://.
URL_PROBES = (["CMD", "probe"], ["CMD", "python", "-m", "shared.kit.probe"])

#: Docker's CPU weight of a container that sets none (compose ``cpu_shares``).
DEFAULT_CPU_SHARES = 1024


def probe_url(svc: Doc) -> tuple[str, int, str] | None:
    """``(scheme, port, path)`` of a healthcheck that probes one URL (:data:`URL_PROBES`)."""
    healthcheck = svc.get("healthcheck") or {}
    test = healthcheck.get("test") or []
    if healthcheck.get("disable") or test[:-1] not in URL_PROBES:
        return None
    found = re.fullmatch(r"(https?|grpc)://[^:/]+:(\d+)(/.*)?", test[-1])
    if not found:
        raise K8sError(f"cannot map the healthcheck {test}")
    return found[1], int(found[2]), found[3] or "/"


def probes(svc: Doc) -> Doc:
    """Readiness on the healthcheck's endpoint, liveness on ``/health/live``, a startup probe."""
    healthcheck = svc.get("healthcheck") or {}
    test = healthcheck.get("test") or []
    if healthcheck.get("disable") or not test or test[0] == "NONE":
        return {}
    timing = {
        "periodSeconds": seconds(healthcheck.get("interval"), 30),
        "timeoutSeconds": seconds(healthcheck.get("timeout"), 30),
        "failureThreshold": int(healthcheck.get("retries") or 3),
    }
    url = probe_url(svc)
    if url and url[0] == "grpc":
        ready: Doc = {"grpc": {"port": url[1]}}
        live: Doc = {"httpGet": {"path": "/health/live", "port": HTTP_PORT}}
    elif url:
        ready = {"httpGet": {"path": url[2], "port": url[1]}}
        live = {"httpGet": {"path": "/health/live", "port": url[1]}}
    elif test[0] == "CMD-SHELL":
        ready = live = {"exec": {"command": ["sh", "-c", test[1].replace("$$", "$")]}}
    else:
        ready = live = {"exec": {"command": [str(a) for a in test[1:]]}}
    start = seconds(healthcheck.get("start_period"))
    startup = live | {
        "periodSeconds": timing["periodSeconds"],
        "timeoutSeconds": timing["timeoutSeconds"],
        "failureThreshold": math.ceil(start / timing["periodSeconds"]) + timing["failureThreshold"],
    }
    return {
        "readinessProbe": ready | timing,
        "livenessProbe": live | timing,
        "startupProbe": startup,
    }


def resources(svc: Doc) -> Doc:
    """Limits from ``deploy.resources.limits``; requests a tenth of the CPU, half the memory.

    A service with ``cpu_shares`` asks for that share of the usual CPU request: the kubelet
    turns requests into the same cgroup weights that ``cpu_shares`` sets under Docker.
    """
    limits = ((svc.get("deploy") or {}).get("resources") or {}).get("limits") or {}
    if not limits:
        return {}
    cpu = round(float(limits["cpus"]) * 1000)
    mib = int(limits["memory"]) // 2**20
    shares = int(svc.get("cpu_shares") or DEFAULT_CPU_SHARES)
    request = max(cpu // 10 * shares // DEFAULT_CPU_SHARES, 10)
    return {
        "requests": {"cpu": cpu_quantity(request), "memory": f"{mib // 2}Mi"},
        "limits": {"cpu": cpu_quantity(cpu), "memory": f"{mib}Mi"},
    }


def user_ids(name: str, svc: Doc) -> tuple[int, int]:
    """Numeric user and group of the service (compose ``user``)."""
    user = str(svc.get("user") or "")
    uid, _, gid = user.partition(":")
    if uid.isdigit():
        return int(uid), int(gid or uid)
    if uid in NAMED_USERS:
        return NAMED_USERS[uid], NAMED_USERS[uid]
    if not uid and svc["image"].startswith("mlsp/"):
        return APP_USER, APP_USER  # the images' USER (compose/Dockerfile)
    raise K8sError(f"{name}: user {user!r} must be numeric (or one of {sorted(NAMED_USERS)})")


def container_security(svc: Doc) -> Doc:
    """``read_only``, ``cap_drop``/``cap_add`` and ``no-new-privileges`` of the service."""
    out: Doc = {}
    if "no-new-privileges:true" in (svc.get("security_opt") or []):
        out["allowPrivilegeEscalation"] = False
    out["readOnlyRootFilesystem"] = bool(svc.get("read_only"))
    capabilities = {}
    if svc.get("cap_drop"):
        capabilities["drop"] = list(svc["cap_drop"])
    if svc.get("cap_add"):
        capabilities["add"] = list(svc["cap_add"])
    if capabilities:
        out["capabilities"] = capabilities
    return out


def pod_security(uid: int, gid: int) -> Doc:
    """The pod's securityContext: non-root as ``uid:gid``, the runtime's seccomp profile."""
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": gid,
        "fsGroup": gid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
