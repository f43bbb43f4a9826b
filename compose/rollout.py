"""A model version change on a running stack: ``make rollout PATTERN=.. MODEL_VERSION=..``.

    python3 -m compose.rollout P --version V -- ./compose/compose.sh -f patterns/P/compose.yaml

The services that read ``MODEL_VERSION`` (sync: the predictors; web-single: the api)
get version ``V``:

* a scalable tier (its replicas, :func:`compose.config.scalable_services`) is replaced
  one replica at a time: one more replica is started with the new setting and waited
  for until healthy, then one old replica is stopped gracefully (SIGTERM: it fails
  readiness and drains for ``DRAIN_S`` while callers move to the others, then finishes
  what it has in flight). Each new replica is ready before an old one stops, so callers
  that spread calls over the replicas and retry on another one lose no request.
* a service that runs alone (web-single's api) can only be recreated: stopped, then
  started with the new setting. Requests fail in between: the con of one container.

Before anything changes, ``V`` must be a version the stack's model volume holds (asked
of a running container); otherwise one line names the versions there and nothing
changes. Standard library only: ``make`` runs it with the system Python.
"""

import argparse
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from compose.config import ComposeError, compose_config, scalable_services

VERSION_SETTING = "MODEL_VERSION"
_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,63}")
HEALTHY_TIMEOUT_S = 120.0
STATE_FORMAT = "{{.State.Status}} {{.State.Health.Status}}"
#: What ``docker stop`` gives a replica to drain and finish (compose's stop_grace_period).
STOP_GRACE_S = 15


class RolloutError(Exception):
    """The rollout cannot start or cannot go on (the message says why)."""


@dataclass(frozen=True)
class Target:
    """A service whose model version a rollout changes, and the model it serves."""

    service: str
    model: str
    scalable: bool


def targets(config: dict) -> list[Target]:
    """The services of a compose model that read ``MODEL_VERSION``."""
    scalable = set(scalable_services(config))
    found = []
    for name, service in sorted(config["services"].items()):
        env = service.get("environment") or {}
        if VERSION_SETTING not in env:
            continue
        models = [m.strip() for m in str(env.get("MODELS") or "").split(",") if m.strip()]
        model = models[0] if models else str(env.get("MODEL_NAME", ""))
        found.append(Target(name, model.partition(":")[0], name in scalable))
    return found


class Docker:
    """The docker and compose commands a rollout runs (``compose``: the stack's command)."""

    def __init__(self, compose: list[str], log: Callable[[str], None] = print) -> None:
        self.compose_command = compose
        self.log = log

    def compose(self, *args: str, env: dict[str, str] | None = None) -> str:
        """``<compose> args`` with ``env`` added; RolloutError with its output when it fails."""
        return _run([*self.compose_command, *args], {**os.environ, **(env or {})})

    def docker(self, *args: str) -> str:
        """``docker args``; RolloutError with its output when it fails."""
        return _run(["docker", *args], None)

    def containers(self, service: str) -> list[str]:
        """Ids of the service's running containers."""
        return self.compose("ps", "-q", "--status", "running", service).split()

    def version_of(self, container: str) -> str:
        """The ``MODEL_VERSION`` a container was started with ("" when it has none)."""
        env = self.docker("inspect", "-f", "{{range .Config.Env}}{{println .}}{{end}}", container)
        for line in env.splitlines():
            if line.startswith(f"{VERSION_SETTING}="):
                return line.partition("=")[2]
        return ""

    def name_of(self, container: str) -> str:
        """The container's name."""
        return self.docker("inspect", "-f", "{{.Name}}", container).strip().lstrip("/")

    def versions_held(self, container: str, model: str) -> list[str]:
        """The versions of ``model`` in the model volume, as ``container`` sees it."""
        listing = self.docker("exec", container, "ls", f"/models/{model}")
        return sorted(listing.split(), key=lambda v: (not v.isdigit(), v.zfill(12)))

    def wait_healthy(self, container: str, timeout_s: float = HEALTHY_TIMEOUT_S) -> float:
        """Seconds until the container's healthcheck passes; RolloutError when it fails."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            state = self.docker(
                "inspect", "-f", "{{.State.Status}} {{.State.Health.Status}}", container
            )
            status, health = state.split()
            if health == "healthy":
                return time.monotonic() - started
            if status in ("exited", "dead") or health == "unhealthy":
                break
            time.sleep(0.5)
        raise RolloutError(f"{self.name_of(container)} did not become healthy ({state.strip()})")


def _run(command: list[str], env: dict[str, str] | None) -> str:
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        output = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise RolloutError(f"{' '.join(command[:3])} ... failed: {output[-1] if output else ''}")
    return done.stdout


def check_version(docker: Docker, pattern: str, target: Target, version: str) -> list[str]:
    """The running containers of ``target``, once ``version`` is known to be one the model
    volume holds; RolloutError (nothing changed) otherwise."""
    if not _VERSION.fullmatch(version):
        raise RolloutError(
            f"MODEL_VERSION={version!r}: give a version of {target.model}, e.g. MODEL_VERSION=2"
        )
    running = docker.containers(target.service)
    if not running:
        raise RolloutError(
            f"{pattern} has no running {target.service}: start it first (make up PATTERN={pattern})"
        )
    held = docker.versions_held(running[0], target.model)
    if version not in held:
        raise RolloutError(
            f"MODEL_VERSION={version}: {target.model} has versions {', '.join(held) or 'none'} "
            "in the stack's model volume; nothing changed"
        )
    return running


def roll_replicas(docker: Docker, target: Target, old: dict[str, str], version: str) -> None:
    """Replace the ``old`` replicas of ``target`` (container -> version), one at a time."""
    for container, old_version in old.items():
        before = set(docker.containers(target.service))
        docker.compose(
            "up", "-d", "--no-deps", "--no-recreate", "--no-build",
            "--scale", f"{target.service}={len(before) + 1}", target.service,
            env={VERSION_SETTING: version},
        )  # fmt: skip
        (new,) = set(docker.containers(target.service)) - before
        try:
            took = docker.wait_healthy(new)
        except RolloutError:
            docker.docker("rm", "-f", new)
            raise
        docker.log(f"{docker.name_of(new)} (version {version}) is healthy after {took:.1f} s")
        name = docker.name_of(container)
        docker.docker("stop", "-t", str(STOP_GRACE_S), container)
        docker.docker("rm", container)
        docker.log(f"{name} (version {old_version}) drained and stopped")


def recreate(docker: Docker, target: Target, version: str) -> None:
    """Stop the one container of ``target`` and start it again with ``version``."""
    docker.compose(
        "up", "-d", "--no-deps", "--no-build", "--wait", target.service,
        env={VERSION_SETTING: version},
    )  # fmt: skip
    docker.log(f"{target.service} restarted with version {version}")


def rollout(pattern: str, version: str, docker: Docker) -> None:
    """Move every service of ``pattern`` that reads MODEL_VERSION to ``version``."""
    found = targets(compose_config(pattern))
    if not found:
        raise RolloutError(f"{pattern} has no service that reads {VERSION_SETTING}")
    checked = [(target, check_version(docker, pattern, target, version)) for target in found]
    for target, running in checked:
        versions = {c: docker.version_of(c) or "highest" for c in running}
        old = {c: v for c, v in versions.items() if v != version}
        if not old:
            docker.log(f"{target.service}: every replica serves version {version} already")
        elif target.scalable:
            roll_replicas(docker, target, old, version)
        else:
            recreate(docker, target, version)
        docker.log(f"{target.service}: version {version} on {len(running)} container(s)")


def main(argv: list[str] | None = None) -> int:
    """Command line: one line and exit 2 when the version cannot be rolled out."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pattern")
    parser.add_argument("--version", default="")
    parser.add_argument("compose", nargs="+", help="the stack's compose command, after --")
    args = parser.parse_args(argv)
    started = time.monotonic()

    def log(line: str) -> None:
        print(f"[{time.monotonic() - started:6.1f} s] {line}", flush=True)

    try:
        rollout(args.pattern, args.version.strip(), Docker(args.compose, log))
    except (RolloutError, ComposeError) as exc:
        print(f"rollout: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
