"""Start a service: ``python -m shared.kit.serve main:app``.

Runs uvicorn with the service's settings (address, JSON logs, graceful
shutdown) and the fast event loop and HTTP parser, whose protocol answers the
requests shed by queueing delay itself (:mod:`shared.kit.shedding_protocol`).

``WEB_CONCURRENCY`` (default 1) is the number of server processes in the
container, all on one port. One process runs one event loop on one core, and
an HTTP api's cost per request is mostly Python (parsing, validation, JSON), so
a second process is how a container uses a second core. With more than one,
uvicorn's supervisor binds the socket, spawns the processes (each imports the
app, so each loads its own model in its lifespan and accepts connections only
once it has), restarts one that dies, and on SIGTERM stops them all, each
draining its requests for ``GRACEFUL_SHUTDOWN_S``. Their metrics are summed
across processes (:mod:`shared.kit.metrics`, prometheus_client's multiprocess mode).

Replicas still scale a tier across machines and survive a container's loss;
processes only share out one container's CPU limit. ``make bench`` measures
both settings side by side (``loadtests/reports/bench.md``), and the same app under
granian, a server with a Rust HTTP core, beside uvicorn: the reason uvicorn stays.

With one process, a stop signal first drains (``DRAIN_S``, when above 0):
readiness fails, and the gRPC health service (if the service has one) says
NOT_SERVING, while every call is still served; callers and load balancers move
to other replicas. Then uvicorn's graceful shutdown: no new connections, the
requests in flight finish (``GRACEFUL_SHUTDOWN_S``), the app's lifespan ends.
The called tiers that drain (predictors, prep) run one process each.
"""

import asyncio
import logging
import multiprocessing.util
import os
import signal
import socket
import sys
import tempfile
from types import FrameType
from typing import Any

import uvicorn
from uvicorn._types import ASGIApplication
from uvicorn.importer import import_from_string
from uvicorn.supervisors import Multiprocess

from shared.kit.health import Readiness
from shared.kit.logs import configure_logging
from shared.kit.settings import ServiceSettings
from shared.kit.shedding_protocol import SheddingHttpToolsProtocol

log = logging.getLogger("shared.kit.serve")
MULTIPROC_DIR_VAR = "PROMETHEUS_MULTIPROC_DIR"
# How long a server process may take to answer its supervisor's ping before it is
# killed and replaced. uvicorn's 5 s is less than a start (numpy, onnxruntime, the
# model) takes on a loaded 2-core machine: processes were replaced in a loop.
WORKER_HEALTHCHECK_TIMEOUT_S = 60


class ServiceConfig(uvicorn.Config):
    """uvicorn's configuration, whose logging is ours (:func:`shared.kit.logs.configure_logging`).

    uvicorn calls :meth:`configure_logging` in the process that builds the
    configuration and again in every worker process it spawns, so the workers'
    lines are the same JSON lines, buffered the same way.
    """

    def __init__(
        self, app: str | ASGIApplication, settings: ServiceSettings, **kwargs: Any
    ) -> None:
        self.service_settings = settings  # read by configure_logging, which __init__ calls
        super().__init__(app, **kwargs)

    def configure_logging(self) -> None:
        """Our JSON logs instead of uvicorn's, written out when the process ends."""
        super().configure_logging()
        settings = self.service_settings
        configure_logging(settings.service_name, settings.log_level, settings.log_flush_interval_s)
        # Flush the buffered log lines on the way out. uvicorn's graceful shutdown ends
        # by raising again the signal it caught, whose default action would kill the
        # process before any exit handler runs: exit normally instead. And a worker
        # process ends without atexit (multiprocessing calls os._exit), so logging's
        # own flush at exit is also registered as the worker's finaliser.
        for stop in (signal.SIGTERM, signal.SIGINT):
            signal.signal(stop, _exit_normally)
        multiprocessing.util.Finalize(None, logging.shutdown, exitpriority=0)


def _exit_normally(*_: object) -> None:
    sys.exit(0)


def uvicorn_config(
    app: str | ASGIApplication, settings: ServiceSettings, workers: int = 1
) -> uvicorn.Config:
    """The one uvicorn configuration of every service: fast loop and parser, our logs."""
    return ServiceConfig(
        app,
        settings,
        host=settings.host,
        port=settings.port,
        workers=workers,
        loop="uvloop",
        http=SheddingHttpToolsProtocol,  # httptools, answering requests shed by delay itself
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=int(settings.graceful_shutdown_s),
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_TIMEOUT_S,
        lifespan="on",
    )


class DrainingServer(uvicorn.Server):
    """uvicorn's server, whose first stop signal drains the app's readiness (that of a
    :func:`shared.kit.app.create_app` app) for ``drain_s`` seconds before the usual graceful
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


def share_metrics_across_processes() -> None:
    """Point prometheus_client at one folder for all the processes' values.

    Must run before any process imports prometheus_client, so in the parent
    before it spawns them (they inherit the environment). The folder is new on
    every start, under ``TMPDIR`` (a tmpfs in the containers, whose root is
    read-only), so no value of an earlier run is counted.
    """
    if not os.environ.get(MULTIPROC_DIR_VAR):
        os.environ[MULTIPROC_DIR_VAR] = tempfile.mkdtemp(prefix="mlsp-metrics-")


def run(app: str, settings: ServiceSettings | None = None) -> None:
    """Serve the ASGI app at import path ``app`` until SIGTERM or SIGINT, in
    ``settings.web_concurrency`` processes."""
    settings = settings or ServiceSettings()
    if settings.web_concurrency == 1:
        server_for(app, settings).run()
        return
    share_metrics_across_processes()
    config = uvicorn_config(app, settings, workers=settings.web_concurrency)
    Multiprocess(config, sockets=[config.bind_socket()]).run()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m shared.kit.serve MODULE:APP")
    run(sys.argv[1])
