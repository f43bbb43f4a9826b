"""Patterns that answer POST /predict at once (web-single, sync): one request per task, no wait."""

from __future__ import annotations

from locust import FastHttpUser, constant, task

from loadtests.config import load_settings
from loadtests.scenarios.common import JSON_HEADERS, iris_payloads, prediction_problem

SETTINGS = load_settings()


class PredictUser(FastHttpUser):
    """POSTs iris instances to ``/predict`` and checks the predictions come back."""

    wait_time = constant(SETTINGS.wait_seconds)
    request_headers: dict[str, str] = JSON_HEADERS  # a subclass may add some (canary: a client key)

    def on_start(self) -> None:
        """Give this user its own deterministic payload stream."""
        self.payloads = iris_payloads(SETTINGS, self.environment)

    @task
    def predict(self) -> None:
        """One request; failed unless 200 with ``batch_size`` predictions."""
        with self.client.post(
            "/predict",
            data=self.payloads.next_body(),
            headers=self.request_headers,
            name="POST /predict",
            catch_response=True,
        ) as response:
            # status 0: no answer at all; Locust reports the connection error itself.
            if response.status_code:
                problem = prediction_problem(
                    response.status_code, response.content, SETTINGS.batch_size
                )
                if problem is not None:
                    response.failure(problem)
