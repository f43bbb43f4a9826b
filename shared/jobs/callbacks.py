"""Deliver a job's end to the URL its submitter gave (``callback_url``).

The api checks the URL at submit (:func:`check_callback_url`: http(s), and a
host on the allow list, so the service cannot be made to call anything else)
and stores it in the job's ``meta``; the worker runs :func:`on_success` or
:func:`on_failure` (RQ callbacks) when the job ends, which POST the same JSON
as ``GET /jobs/{id}`` answers. A failure that will be retried sends nothing:
only the final outcome is delivered. Delivery is tried a few times; when it
still fails the job keeps its result, which stays available by polling. A receiver
that needs an API key (:mod:`shared.kit.api_keys`) gets ``CALLBACK_API_KEY``'s as
``Authorization: Bearer``.
"""

import logging
import time
import urllib.error
import urllib.request
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import orjson
import redis
from prometheus_client import Counter
from pydantic import Field, SecretStr
from rq.job import Job

from shared.jobs.contract import error_from_exception, job_body
from shared.kit.api_keys import bearer_header
from shared.kit.errors import InvalidInput
from shared.kit.logs import request_id_var
from shared.kit.settings import _EnvSettings

log = logging.getLogger("shared.jobs.callbacks")

CALLBACKS = Counter(
    "mlsp_callbacks", "Callback deliveries by outcome (delivered, gave_up).", ["outcome"]
)
META_KEY = "callback_url"


class CallbackSettings(_EnvSettings):
    """Who may be called back (api) and how hard to try (worker)."""

    callback_allowed_hosts: str = Field(
        "", description="Comma-separated host names callbacks may go to; empty: no callbacks."
    )
    callback_timeout_s: float = Field(5.0, gt=0, description="Per delivery attempt.")
    callback_attempts: int = Field(3, ge=1, description="Attempts before giving up.")
    callback_api_key: SecretStr = Field(
        SecretStr(""),
        description="Sent as 'Authorization: Bearer' to the receiver (its API key); "
        "a comma-separated list: the first. Empty: none sent.",
    )

    @property
    def allowed_hosts(self) -> frozenset[str]:
        """The allow list as a set of lower-case host names."""
        return frozenset(
            h.strip().lower() for h in self.callback_allowed_hosts.split(",") if h.strip()
        )

    @property
    def budget_s(self) -> int:
        """An upper bound of the time all attempts may take (RQ's callback timeout)."""
        return int(self.callback_attempts * (self.callback_timeout_s + 1)) + 1


def check_callback_url(url: object, allowed_hosts: frozenset[str]) -> str:
    """``url`` when callbacks may go there, else :class:`InvalidInput` naming ``callback_url``."""
    if not isinstance(url, str):
        raise InvalidInput("must be a URL string", field=META_KEY)
    if not allowed_hosts:
        raise InvalidInput(
            "callbacks are disabled (CALLBACK_ALLOWED_HOSTS is empty)", field=META_KEY
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("must be an http:// or https:// URL", field=META_KEY)
    if parts.hostname.lower() not in allowed_hosts:
        raise InvalidInput(
            f"host {parts.hostname!r} is not allowed; allowed: {sorted(allowed_hosts)}",
            field=META_KEY,
        )
    return url


def deliver(url: str, body: dict[str, Any], settings: CallbackSettings) -> bool:
    """POST ``body`` as JSON to ``url``, retrying with backoff; True once a 2xx came back."""
    data = orjson.dumps(body)
    headers = {"Content-Type": "application/json", **bearer_header(settings.callback_api_key)}
    request_id = request_id_var.get()
    if request_id is not None:
        headers["X-Request-ID"] = request_id
    for attempt in range(1, settings.callback_attempts + 1):
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=settings.callback_timeout_s) as answer:
                if 200 <= answer.status < 300:
                    CALLBACKS.labels("delivered").inc()
                    log.info("callback delivered", extra={"job_id": body["job_id"], "url": url})
                    return True
        except (urllib.error.URLError, OSError) as exc:
            log.warning(
                "callback attempt %d failed: %s",
                attempt,
                exc,
                extra={"job_id": body["job_id"], "url": url},
            )
        if attempt < settings.callback_attempts:
            time.sleep(0.5 * attempt)
    CALLBACKS.labels("gave_up").inc()
    log.error("callback not delivered; the result stays available by polling", extra={"url": url})
    return False


def on_success(job: Job, connection: redis.Redis, result: Any) -> None:
    """RQ success callback: deliver the finished job to its ``callback_url``."""
    url = job.meta.get(META_KEY)
    if url:
        deliver(url, job_body(job, "finished", result=result), CallbackSettings())


def on_failure(
    job: Job,
    connection: redis.Redis,
    exc_type: type[BaseException] | None,
    exc_value: BaseException | None,
    traceback: TracebackType | None,
) -> None:
    """RQ failure callback: deliver the failed job, unless a retry follows."""
    url = job.meta.get(META_KEY)
    if not url or job.should_retry:
        return
    name = exc_type.__name__ if exc_type is not None else "Exception"
    error = error_from_exception(name, str(exc_value) if exc_value is not None else "")
    deliver(url, job_body(job, "failed", error=error), CallbackSettings())
