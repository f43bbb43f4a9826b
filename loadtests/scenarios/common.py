"""Helpers shared by the scenario modules (no Locust import needed here)."""

from __future__ import annotations

import itertools
import time
from typing import Any

import orjson

from loadtests.config import Settings
from loadtests.payloads import IrisPayloads

__all__ = [
    "JSON_HEADERS",
    "accepted_job_url",
    "fire_timing",
    "iris_payloads",
    "job_problem",
    "prediction_problem",
    "user_seed",
]

#: Headers for a pre-serialised JSON body.
JSON_HEADERS: dict[str, str] = {"Content-Type": "application/json"}

_users = itertools.count()


def user_seed(base_seed: int, environment: Any) -> int:
    """A seed distinct for every simulated user, also across Locust worker processes."""
    runner = getattr(environment, "runner", None)
    worker_index = max(getattr(runner, "worker_index", 0), 0)
    return base_seed + 1_000_003 * worker_index + next(_users)


def iris_payloads(settings: Settings, environment: Any, **options: Any) -> IrisPayloads:
    """The deterministic payload stream of one simulated user (repeats drawn from one pool).

    ``options`` go to :class:`IrisPayloads` (e.g. ``decimals``).
    """
    return IrisPayloads(
        user_seed(settings.seed, environment),
        settings.batch_size,
        repeat_share=settings.repeat_share,
        pool_seed=settings.seed,
        **options,
    )


def prediction_problem(status: int, content: bytes | None, expected: int) -> str | None:
    """Why a ``/predict`` answer is wrong, or ``None`` if it is a 200 with ``expected`` predictions.

    The messages are short and stable, since Locust groups failures by message.
    """
    if status != 200:
        return f"HTTP {status}"
    try:
        body = orjson.loads(content or b"")
    except orjson.JSONDecodeError:
        return "response body is not JSON"
    predictions = body.get("predictions") if isinstance(body, dict) else None
    if not isinstance(predictions, list):
        return "response has no 'predictions' list"
    if len(predictions) != expected:
        return f"expected {expected} predictions, got {len(predictions)}"
    return None


def accepted_job_url(status: int, content: bytes | None) -> tuple[str, str | None]:
    """The job URL of an async submit's answer, and why the answer is wrong (or ``None``)."""
    if status != 202:
        return "", f"HTTP {status}"
    try:
        body = orjson.loads(content or b"")
    except orjson.JSONDecodeError:
        return "", "response body is not JSON"
    url = body.get("url") if isinstance(body, dict) else None
    if not isinstance(url, str) or not url.startswith("/"):
        return "", "response has no job 'url'"
    return url, None


def job_problem(job: dict[str, Any], expected: int) -> str | None:
    """Why an ended job is wrong, or ``None`` if it finished with ``expected`` predictions."""
    if job.get("status") == "failed":
        error = job.get("error") or {}
        return f"job failed: {error.get('code', 'unknown')}"
    result = job.get("result")
    predictions = result.get("predictions") if isinstance(result, dict) else None
    if not isinstance(predictions, list):
        return "finished job has no 'predictions' list"
    if len(predictions) != expected:
        return f"expected {expected} predictions, got {len(predictions)}"
    return None


def fire_timing(
    environment: Any,
    request_type: str,
    name: str,
    started: float,
    *,
    response_length: int = 0,
    exception: BaseException | str | None = None,
) -> None:
    """Report a timing Locust did not measure itself as its own stats entry.

    ``started`` is a :func:`time.perf_counter` value. An async scenario calls,
    for example, ``fire_timing(self.environment, "E2E", "job completed", t0)``
    once a polled job is done, so the end-to-end time appears beside the
    submit and poll requests.
    """
    environment.events.request.fire(
        request_type=request_type,
        name=name,
        response_time=(time.perf_counter() - started) * 1000.0,
        response_length=response_length,
        exception=exception,
        context={},
    )
