"""Liveness and readiness.

Liveness says the process answers. Readiness says it can do its job: the
model is loaded and every dependency answers. Services register one async
check per dependency; ``GET /health/ready`` runs them all and answers 503
with ``Retry-After`` and the failing checks' reasons while any fails. A
service that is about to stop says so first (:meth:`Readiness.drain`): it
fails readiness while it still serves, so that callers move away.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable

import orjson
from starlette.requests import Request
from starlette.responses import Response

log = logging.getLogger("shared.kit.health")

# A check returns None when fine, or a short reason when not (or raises).
Check = Callable[[], Awaitable[str | None]]
CHECK_TIMEOUT_S = 2.0


class Readiness:
    """The named checks that must all pass before a service takes traffic."""

    def __init__(self) -> None:
        self.checks: dict[str, Check] = {}
        self.draining = False
        self._on_drain: list[Callable[[], Awaitable[None]]] = []

    def add(self, name: str, check: Check) -> None:
        """Register ``check`` under ``name`` (e.g. ``model``, ``redis``)."""
        self.checks[name] = check

    def on_drain(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run ``hook`` when the service starts draining (e.g. tell gRPC health NOT_SERVING)."""
        self._on_drain.append(hook)

    async def drain(self) -> None:
        """From now on, not ready (the service is stopping); run the drain hooks."""
        self.draining = True
        for hook in self._on_drain:
            await hook()

    async def failures(self) -> dict[str, str]:
        """The reasons of the checks that fail now, by name (empty when ready)."""
        if self.draining:
            return {"shutdown": "draining: the service is stopping"}
        results = await asyncio.gather(*(self._run(check) for check in self.checks.values()))
        return {name: reason for name, reason in zip(self.checks, results, strict=True) if reason}

    @staticmethod
    async def _run(check: Check) -> str | None:
        try:
            return await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
        except TimeoutError:
            return f"no answer within {CHECK_TIMEOUT_S} s"
        except Exception as exc:  # a failing check is a reason, not a crash
            return f"{type(exc).__name__}: {exc}"


def _json(body: dict[str, object], status: int = 200, **headers: str) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


async def live(_: Request) -> Response:
    """``GET /health/live``: the process answers."""
    return _json({"status": "alive"})


def ready_endpoint(readiness: Readiness) -> Callable[[Request], Awaitable[Response]]:
    """``GET /health/ready`` for ``readiness``."""

    async def ready(_: Request) -> Response:
        failures = await readiness.failures()
        if failures:
            log.debug("not ready: %s", failures)
            return _json({"status": "not ready", "checks": failures}, 503, **{"Retry-After": "1"})
        return _json({"status": "ready"})

    return ready
