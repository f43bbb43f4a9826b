"""A pattern's compose services as Kubernetes sees them: which are workloads, one-shots,
stateful, called; their ports, replicas, volumes and queues."""

import re
from urllib.parse import urlsplit

from compose.config import Doc
from compose.k8s.common import HTTP_PORT, MIN_CALLED_REPLICAS
from compose.k8s.probes import probe_url


def build_only(services: dict[str, Doc]) -> set[str]:
    """Services that only build an image others are built FROM (``base``, ``prep-base``).

    Their image is a build argument of another service, and they mount nothing: the
    model-export image is a base too (of data-cache's seed), but it fills a volume.
    """
    bases = {
        str(value)
        for svc in services.values()
        for value in ((svc.get("build") or {}).get("args") or {}).values()
    }
    return {
        name
        for name, svc in services.items()
        if svc.get("image") in bases
        and not (svc.get("volumes") or svc.get("ports") or svc.get("healthcheck"))
        and svc.get("restart") in (None, "no")
    }


def one_shot(svc: Doc) -> bool:
    """Runs once to completion: no healthcheck, no restart (model-export, migrate, a seed)."""
    healthcheck = svc.get("healthcheck") or {}
    no_healthcheck = healthcheck.get("disable", False) or not healthcheck.get("test")
    return bool(no_healthcheck and svc.get("restart") in (None, "no"))


class Pattern:
    """A pattern's compose configuration, classified for the Kubernetes objects it maps to."""

    def __init__(self, name: str, config: Doc) -> None:
        self.name = name
        self.build_only = build_only(config["services"])
        self.services: dict[str, Doc] = {
            n: s for n, s in config["services"].items() if n not in self.build_only
        }
        extensions = config.get("x-kubernetes") or {}
        self.cronjobs: dict[str, Doc] = extensions.get("cronjobs") or {}
        self.one_shots = {n for n, s in self.services.items() if one_shot(s)}

    def awaited(self, name: str) -> bool:
        """Some service waits for ``name`` to complete (then it runs as an init container)."""
        return any(
            how.get("condition") == "service_completed_successfully"
            for svc in self.services.values()
            for dep, how in (svc.get("depends_on") or {}).items()
            if dep == name
        )

    def workloads(self) -> list[str]:
        """Services that become workloads: the long-running ones, and Jobs for the
        one-shots nobody waits for."""
        return [n for n in sorted(self.services) if n not in self.one_shots or not self.awaited(n)]

    def stateful(self, name: str) -> bool:
        """Third-party images (Redis, PostgreSQL) keep state: StatefulSets."""
        return not self.services[name]["image"].startswith("mlsp/")

    def peer_ports(self, name: str) -> set[int]:
        """Ports of ``name`` that its peers' environment names (``name:port`` in a URL)."""
        found = re.compile(rf"(?<![\w.-]){re.escape(name)}:(\d+)")
        return {
            int(port)
            for other, svc in self.services.items()
            if other != name
            for value in (svc.get("environment") or {}).values()
            for port in found.findall(str(value or ""))
        }

    def published(self, name: str) -> set[int]:
        """Container ports compose publishes on the host."""
        return {int(p["target"]) for p in self.services[name].get("ports") or []}

    def ports(self, name: str) -> dict[str, int]:
        """Named ports of the service: ``http``, ``grpc``, ``tcp-<port>``."""
        svc = self.services[name]
        numbers = self.peer_ports(name) | self.published(name)
        named: dict[str, int] = {}
        if svc["image"].startswith("mlsp/"):
            named["http"] = HTTP_PORT
        probe = probe_url(svc)
        grpc_port = (svc.get("environment") or {}).get("GRPC_PORT")
        if probe and probe[0] == "grpc":
            named["grpc"] = probe[1]
        elif grpc_port:  # a gRPC server probed over its HTTP face
            named["grpc"] = int(grpc_port)
        if probe and probe[0] != "grpc":
            named.setdefault("http", probe[1])
        for number in sorted(numbers - set(named.values())):
            named[f"tcp-{number}"] = number
        return named

    def called(self, name: str) -> bool:
        """Published, or named in a peer's URL: serves requests (scaled by an HPA)."""
        return bool(self.published(name) or self.peer_ports(name))

    def mounts_of(self, name: str) -> set[str]:
        """Named volumes the service mounts."""
        return {
            v["source"]
            for v in self.services[name].get("volumes") or []
            if v["type"] == "volume" and v.get("source")
        }

    def init_sources(self, name: str) -> list[str]:
        """One-shot services to run as init containers of ``name``, dependencies first.

        Followed through one-shots (the batch worker waits for migrate, which waits for
        model-export); one that writes volumes only where ``name`` mounts one of them.
        """
        found: list[str] = []

        def visit(service: str) -> None:
            for dep, how in sorted((self.services[service].get("depends_on") or {}).items()):
                done = how.get("condition") == "service_completed_successfully"
                if dep in self.one_shots and done and dep not in found:
                    visit(dep)
                    writes = self.mounts_of(dep)
                    if not writes or writes & self.mounts_of(name):
                        found.append(dep)

        visit(name)
        return found

    def replicas(self, name: str) -> int:
        """Pods of a Deployment: compose's ``deploy.replicas`` (1), at least
        :data:`MIN_CALLED_REPLICAS` for a called one (the HPA's minimum)."""
        svc = self.services[name]
        replicas = int((svc.get("deploy") or {}).get("replicas") or 1)
        return max(replicas, MIN_CALLED_REPLICAS) if self.called(name) else replicas

    def rq_queue(self, name: str) -> tuple[str, str, str] | None:
        """``(redis address, db, queue)`` of an RQ worker (KEDA scales it), else None.

        An RQ worker: not called, not a scheduler, and given ``REDIS_URL`` and ``QUEUE_NAME``.
        """
        env = self.services[name].get("environment") or {}
        if self.called(name) or name in self.cronjobs or not env.get("QUEUE_NAME"):
            return None
        url = urlsplit(str(env.get("REDIS_URL") or ""))
        if url.scheme != "redis" or not url.hostname:
            return None
        return f"{url.hostname}:{url.port or 6379}", url.path.strip("/") or "0", env["QUEUE_NAME"]
