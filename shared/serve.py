"""Start a service: ``python -m shared.serve main:app``.

Runs uvicorn with the service's settings (address, JSON logs, graceful
shutdown) and the fast event loop and HTTP parser. One process per
container: scale with replicas, not workers.
"""

import sys

import uvicorn
from uvicorn._types import ASGIApplication

from shared.logs import configure_logging
from shared.settings import ServiceSettings


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


def run(app: str, settings: ServiceSettings | None = None) -> None:
    """Serve the ASGI app at import path ``app`` until SIGTERM or SIGINT."""
    settings = settings or ServiceSettings()
    configure_logging(settings.service_name, settings.log_level, settings.log_flush_interval_s)
    uvicorn.Server(uvicorn_config(app, settings)).run()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m shared.serve MODULE:APP")
    run(sys.argv[1])
