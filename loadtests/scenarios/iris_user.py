"""The base of every scenario that POSTs iris rows: its own payload stream, one way to send it."""

from __future__ import annotations

from typing import Any, ClassVar

from locust import FastHttpUser, constant
from locust.contrib.fasthttp import ResponseContextManager

from loadtests.config import load_settings
from loadtests.scenarios.common import JSON_HEADERS, iris_payloads

SETTINGS = load_settings()


class IrisUser(FastHttpUser):
    """A simulated client with its own deterministic stream of iris bodies (``SETTINGS``)."""

    abstract = True
    wait_time = constant(SETTINGS.wait_seconds)
    request_headers: dict[str, str] = JSON_HEADERS  # a subclass or a user may add some
    payload_options: ClassVar[dict[str, Any]] = {}  # for IrisPayloads (e.g. ``decimals``)

    def on_start(self) -> None:
        """Give this user its own deterministic payload stream."""
        self.payloads = iris_payloads(SETTINGS, self.environment, **self.payload_options)

    def post_rows(self, path: str, name: str) -> ResponseContextManager:
        """POST the next body to ``path``, filed under ``name``; the caller judges the answer."""
        return self.client.post(
            path,
            data=self.payloads.next_body(),
            headers=self.request_headers,
            name=name,
            catch_response=True,
        )
