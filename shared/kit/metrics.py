"""Prometheus metrics with the same names in every service.

* ``mlsp_http_requests_total{route,method,status}`` and
  ``mlsp_http_request_duration_seconds{route,method}``: recorded by
  :class:`shared.kit.middleware.RequestContextMiddleware` for every request.
* ``mlsp_stage_duration_seconds{stage}``: time in each stage a service owns
  (``decode``, ``inference``, ``cache_lookup``, ...), via :func:`stage`.
* ``mlsp_model_info{model,version,sha256}``: which model a service serves, down to
  its file's sha256 (from its ``metadata.json``).
* ``mlsp_build_info{version,git_sha}``: the code a service runs: the package version
  and the commit its image was built from (build arg ``GIT_SHA``, else ``unknown``).
* ``mlsp_http_requests_in_flight`` and ``mlsp_http_requests_shed_total``: the
  in-flight bound's count and what it turned away (:mod:`shared.kit.overload`).
* ``mlsp_queue_depth{queue}``: jobs waiting in an RQ queue, read by the api that
  fills it at each submit and every few seconds (:mod:`shared.jobs.async_queue`).
* ``mlsp_job_waiters`` and ``mlsp_job_waits_total{outcome}``: the requests waiting now
  for a job to end (``GET /jobs/{id}?wait_s=``), and how the long polls ended: ``ended``,
  ``timed_out``, ``disconnected`` (the client left) or ``refused`` (over
  ``MAX_JOB_WAITERS``: answered at once) (:mod:`shared.jobs.job_ends`).

An api served by several processes (``WEB_CONCURRENCY``, :mod:`shared.kit.serve`)
runs prometheus_client in multiprocess mode: each process writes its values
to files in ``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` answers their sum,
whichever process serves the scrape. A gauge says how its processes' values
combine (``multiprocess_mode``); one that does not is reported per process,
with a ``pid`` label. Gauges read by a callback at scrape time
(``set_function``) are not written to those files, so they do not exist in that
mode: a value is set when it changes instead (``mostrecent``: the last one set by
any process), and a count is kept with ``inc``/``dec`` (``livesum``: the live
processes' sum).
"""

import functools
import os
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from starlette.requests import Request
from starlette.responses import Response

from shared import __version__

disable_created_metrics()  # the *_created series only clutter the scrape

# Sub-millisecond buckets: most of what is measured here takes microseconds to milliseconds.
LATENCY_BUCKETS = (
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

HTTP_REQUESTS = Counter(
    "mlsp_http_requests", "HTTP requests answered.", ["route", "method", "status"]
)
HTTP_LATENCY = Histogram(
    "mlsp_http_request_duration_seconds",
    "Time from the request's arrival to the end of its answer.",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
STAGE_LATENCY = Histogram(
    "mlsp_stage_duration_seconds",
    "Time spent in one stage of the work a service owns.",
    ["stage"],
    buckets=LATENCY_BUCKETS,
)
QUEUE_DEPTH = Gauge(
    "mlsp_queue_depth",
    "Jobs waiting in the queue, read at each submit and every QUEUE_DEPTH_INTERVAL_S.",
    ["queue"],
    multiprocess_mode="mostrecent",  # every process reads the same queue: the latest wins
)
JOB_WAITERS = Gauge(
    "mlsp_job_waiters",
    "Requests waiting now for a job to end (GET /jobs/{id}?wait_s=).",
    multiprocess_mode="livesum",  # WEB_CONCURRENCY > 1: the live processes' waiters together
)
JOB_WAITS = Counter(
    "mlsp_job_waits",
    "Long polls of a job (wait_s > 0) by how they ended: ended, timed_out, disconnected, "
    "refused (over MAX_JOB_WAITERS, answered at once).",
    ["outcome"],
)
MODEL_INFO = Gauge(
    "mlsp_model_info",
    "The model a service serves (value 1).",
    ["model", "version", "sha256"],
    multiprocess_mode="max",  # every process serves the same model: one series
)
BUILD_INFO = Gauge(
    "mlsp_build_info",
    "The code a service runs (value 1): package version and git commit of its image.",
    ["version", "git_sha"],
    multiprocess_mode="max",  # every process runs the same code: one series
)
#: The commit an image was built from: compose/Dockerfile sets it from the build arg GIT_SHA.
GIT_SHA_VAR = "MLSP_GIT_SHA"
BUILD_INFO.labels(__version__, os.environ.get(GIT_SHA_VAR) or "unknown").set(1)


class stage:  # noqa: N801 - used like a function: `with stage("inference"):`
    """Time the block as stage ``name`` in ``mlsp_stage_duration_seconds``.

    A class rather than a ``@contextmanager`` generator, and with the labelled
    child looked up once per name: it runs several times in every request.
    """

    __slots__ = ("_child", "_started")

    _children: dict[str, Histogram] = {}

    def __init__(self, name: str) -> None:
        child = self._children.get(name)
        if child is None:
            child = self._children[name] = STAGE_LATENCY.labels(name)
        self._child = child

    def __enter__(self) -> None:
        self._started = time.perf_counter()

    def __exit__(self, *_: object) -> None:
        self._child.observe(time.perf_counter() - self._started)


def record_model(name: str, version: str, sha256: str = "") -> None:
    """Publish the served model's name, version and file sha256 (empty: not known)."""
    MODEL_INFO.labels(name, version, sha256).set(1)


def forget_dead_processes(directory: str | None = None) -> list[int]:
    """Drop the ``live*`` gauge values of server processes that are gone (a crashed one
    leaves its count behind); the pids dropped. Called by each process as it starts, so
    a replacement cleans up after the one it replaces."""
    directory = directory or os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return []
    gone = set()
    for name in os.listdir(directory):
        if not (name.startswith("gauge_live") and name.endswith(".db")):
            continue
        pid = int(name.rsplit("_", 1)[1].removesuffix(".db"))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            gone.add(pid)
        except PermissionError:  # alive, another user's
            pass
    for pid in gone:
        multiprocess.mark_process_dead(pid, directory)
    return sorted(gone)


@functools.cache
def scraped_registry() -> CollectorRegistry:
    """What ``/metrics`` reports: this process's registry, or with
    ``PROMETHEUS_MULTIPROC_DIR`` set, the sum of every process's values."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


async def metrics_endpoint(_: Request) -> Response:
    """``GET /metrics`` in the Prometheus text format."""
    return Response(generate_latest(scraped_registry()), media_type=CONTENT_TYPE_LATEST)
