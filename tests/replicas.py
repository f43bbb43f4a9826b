"""Replicas of a compose stack's called tiers, as the fault suite and the scaling report use
them: scale a tier, wait until every replica gets calls, count each replica's calls and
the retries of its callers, stop or kill one replica and start it again.

Calls are read from each replica's own ``/metrics`` (``docker exec``: internal services
publish no port); retries from ``mlsp_outbound_retries_total`` of the services that call
the tier (the api through its published port, the others through ``docker exec``).
"""

import contextlib
import re
import subprocess
import time

import httpx

from tests.compose_config import compose_config
from tests.compose_stack import ComposeStack
from tests.metrics_text import infer_calls, sample_total

RETRIES_METRIC = "mlsp_outbound_retries_total"


def callers(pattern: str, service: str) -> list[str]:
    """The services of ``pattern`` whose peer URLs name ``service`` (``PRED_URL: pred:8081``,
    ``http://predictor:8080``, ``iris=predictor-linear:8081,...``), from its compose file."""
    names_it = re.compile(rf"(^|[/=,@]){re.escape(service)}:\d+")
    config = compose_config(pattern, profiles="")
    return sorted(
        name
        for name, spec in config["services"].items()
        if name != service
        and any(names_it.search(str(value)) for value in (spec.get("environment") or {}).values())
    )


def docker(*args: str, timeout_s: float = 60) -> None:
    """``docker <args>``; raises when it fails."""
    subprocess.run(["docker", *args], check=True, capture_output=True, timeout=timeout_s)


def served(stack: ComposeStack, container: str) -> float:
    """The inference calls one replica has answered since it started (0 when it cannot say)."""
    try:
        return infer_calls(stack.metrics_of(container))
    except (subprocess.SubprocessError, OSError):
        return 0.0


def outbound_retries(stack: ComposeStack, services: list[str]) -> float:
    """Calls retried on another replica so far by every container of ``services``."""
    total = 0.0
    for service in services:
        if service == "api":  # the public api: through its published port
            with contextlib.suppress(httpx.HTTPError):
                total += sample_total(stack.get("/metrics").text, RETRIES_METRIC)
            continue
        for container in stack.containers(service):
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                total += sample_total(stack.metrics_of(container), RETRIES_METRIC)
    return total


def scale(stack: ComposeStack, counts: dict[str, int]) -> None:
    """Run ``counts[service]`` replicas of each service (others untouched; none recreated)."""
    flags = [flag for name, n in counts.items() for flag in ("--scale", f"{name}={n}")]
    # Not --wait: on a busy machine a healthcheck may time out once, and --wait gives up.
    stack.compose("up", "-d", "--no-deps", "--no-recreate", *flags, *counts)


def wait_in_rotation(stack: ComposeStack, services: list[str], timeout_s: float) -> list[str]:
    """Wait until every replica of ``services`` has answered calls; the containers that
    had none within ``timeout_s`` (empty when all did)."""
    containers = [c for service in services for c in stack.containers(service)]
    deadline = time.monotonic() + timeout_s
    idle = containers
    while idle and time.monotonic() < deadline:
        idle = [c for c in idle if served(stack, c) == 0]
        if idle:
            time.sleep(1.0)
    return idle


def wait_serving(
    stack: ComposeStack, container: str, since: float, timeout_s: float
) -> float | None:
    """Seconds from ``since`` until ``container`` answered a call (None: not within
    ``timeout_s``). Its counts start at 0 when it (re)starts."""
    deadline = since + timeout_s
    while time.monotonic() < deadline:
        if served(stack, container) > 0:
            return time.monotonic() - since
        time.sleep(0.5)
    return None
