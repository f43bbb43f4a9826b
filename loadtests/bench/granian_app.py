"""A service's app under granian, for ``make bench`` (web-single beside uvicorn).

    granian --interface asgi --factory loadtests.bench.granian_app:service_app

granian (a Rust HTTP core: it parses HTTP and runs the connections outside Python) is
measured beside uvicorn, the server every service runs (:mod:`shared.kit.serve`), on
the same app and the same wrk load. This factory runs in each of granian's worker
processes: it sets up the service's JSON logs as :mod:`shared.kit.serve` does, so both
servers do the same work per request, and returns the app of ``main`` in the working
directory. The queueing-delay shedding answered in uvicorn's protocol
(:mod:`shared.kit.shedding_protocol`) has no counterpart here; the app's in-flight
bound still holds.
"""

from importlib import import_module
from typing import Any

from shared.kit.logs import configure_logging


def service_app() -> Any:
    """``main.app``, with the service's logging set up first."""
    main = import_module("main")
    settings = main.settings
    configure_logging(settings.service_name, settings.log_level, settings.log_flush_interval_s)
    return main.app
