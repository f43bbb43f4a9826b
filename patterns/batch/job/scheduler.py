"""batch scheduler: RQ's CronScheduler enqueues a run every ``BATCH_INTERVAL_S`` seconds.

One scheduler per stack (two would start two runs per interval; the second
would find the first in progress and do nothing). The first run is enqueued
as soon as it starts. Health and metrics on port 8080 (ready while Redis
answers and the scheduler's heartbeat is recent).
"""

import socket
from collections.abc import Callable
from datetime import UTC, datetime

import jobs
import redis
from pydantic import Field
from rq.cron import CronScheduler

from shared.jobs.contract import QueueSettings
from shared.kit.health_server import start_health_server
from shared.kit.logs import configure_logging
from shared.kit.settings import ServiceSettings
from shared.stores.redis_client import RedisSettings, connect

# CronScheduler beats at least once a minute (it sleeps at most 60 s).
HEARTBEAT_LIMIT_S = 90


class Settings(ServiceSettings, RedisSettings, QueueSettings):
    """The scheduler's settings: health port, Redis, queue, interval."""

    batch_interval_s: int = Field(30, ge=1, description="Seconds between scheduled runs.")


def heartbeat_check(scheduler: CronScheduler) -> Callable[[], str | None]:
    """Readiness: the scheduler has beaten in the last 90 s."""

    def check() -> str | None:
        try:
            last = scheduler.last_heartbeat
        except redis.RedisError as exc:
            return f"Redis: {type(exc).__name__}: {exc}"
        if last is None:
            return "the scheduler has not started yet"
        age = (datetime.now(UTC) - last).total_seconds()
        return None if age < HEARTBEAT_LIMIT_S else f"no scheduler heartbeat for {age:.0f} s"

    return check


def main() -> None:
    """Register the run and enqueue it on its interval until SIGTERM."""
    settings = Settings()
    configure_logging(settings.service_name, settings.log_level)
    scheduler = CronScheduler(connection=connect(settings), name=f"batch-{socket.gethostname()}")
    scheduler.register(
        jobs.start_run,
        settings.queue_name,
        kwargs={"trigger": "cron"},
        interval=settings.batch_interval_s,
        job_timeout=60,
        result_ttl=settings.result_ttl_s,
        failure_ttl=settings.result_ttl_s,
    )
    start_health_server({"scheduler": heartbeat_check(scheduler)}, settings.port)
    scheduler.start()


if __name__ == "__main__":
    main()
