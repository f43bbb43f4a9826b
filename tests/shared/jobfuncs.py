"""Job functions for the queue tests (RQ imports jobs by module path, so they live here)."""

import time

from rq import get_current_job


def add(a: int, b: int) -> int:
    """A job that succeeds."""
    return a + b


def explode(message: str) -> None:
    """A job that fails with a message."""
    raise ValueError(message)


def sleep_then_add(seconds: float, a: int, b: int) -> int:
    """A slow job; records that it started."""
    job = get_current_job()
    if job is not None:
        job.meta["attempt_started"] = job.meta.get("attempt_started", 0) + 1
        job.save_meta()
    time.sleep(seconds)
    return a + b
