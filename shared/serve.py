"""Start a service: ``python -m shared.serve main:app``.

Runs uvicorn with the service's settings (address, JSON logs, graceful
shutdown) and the fast event loop and HTTP parser. One process per
container: scale with replicas, not workers.

A stop signal first drains (``DRAIN_S``, when above 0): readiness fails, and
the gRPC health service (if the service has one) says NOT_SERVING, while every
call is still served; callers and load balancers move to other replicas. Then
uvicorn's graceful shutdown: no new connections, the requests in flight finish
(``GRACEFUL_SHUTDOWN_S``), the app's lifespan ends.
"""

import asyncio
import logging
import signal
import socket
import sys
from types import FrameType

import uvicorn
from uvicorn._types import ASGIApplication
from uvicorn.importer import import_from_string

from shared.health import Readiness
from shared.logs import configure_logging
from shared.settings import ServiceSettings

log = logging.getLogger("shared.serve")


def uvicorn_config(app: str | ASGIApplication, settings: ServiceSettings) -> uvicorn.Config:
    """The one uvicorn configuration of every service: fast loop and parser, our logs."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=int(settings.graceful_shutdown_s),
        lifespan="on",
    )


class DrainingServer(uvicorn.Server):
    """uvicorn's server, whose first stop signal drains the app's readiness (that of a
    :func:`shared.app.create_app` app) for ``drain_s`` seconds before the usual graceful
    shutdown; a second signal stops at once."""

    def __init__(self, config: uvicorn.Config, drain_s: float) -> None:
        super().__init__(config)
        self.drain_s = drain_s
        self.readiness: Readiness | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain: asyncio.Task[None] | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        """Serve until a stop signal, then drain and shut down."""
        self._loop = asyncio.get_running_loop()
        if not self.config.loaded:  # the app is imported in the loop, as uvicorn does
            self.config.load()
        app = self.config.app
        app = import_from_string(app) if isinstance(app, str) else app  # the loaded module's
        self.readiness = getattr(getattr(app, "state", None), "readiness", None)
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """The signal handler: start draining, or stop when already draining."""
        if self._drain is not None or self.readiness is None or self.drain_s <= 0:
            super().handle_exit(sig, frame)
            return
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._start_draining, sig)

    def _start_draining(self, sig: int) -> None:
        if self._drain is None:
            self._drain = asyncio.get_running_loop().create_task(self.drain_then_exit(sig))

    async def drain_then_exit(self, sig: int = signal.SIGTERM) -> None:
        """Fail readiness, keep serving ``drain_s`` seconds, then shut down as for ``sig``."""
        assert self.readiness is not None
        log.info("draining for %g s before stopping", self.drain_s)
        await self.readiness.drain()
        await asyncio.sleep(self.drain_s)
        super().handle_exit(sig, None)


def server_for(app: str | ASGIApplication, settings: ServiceSettings) -> DrainingServer:
    """The uvicorn server of ``app``, draining for ``DRAIN_S`` on the first stop signal."""
    return DrainingServer(uvicorn_config(app, settings), settings.drain_s)


def run(app: str, settings: ServiceSettings | None = None) -> None:
    """Serve the ASGI app at import path ``app`` until SIGTERM or SIGINT."""
    settings = settings or ServiceSettings()
    configure_logging(settings.service_name, settings.log_level, settings.log_flush_interval_s)
    server_for(app, settings).run()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m shared.serve MODULE:APP")
    run(sys.argv[1])
