"""Patterns that answer POST /predict at once (web-single, sync): one request per task, no wait."""

from __future__ import annotations

from locust import task

from loadtests.scenarios.common import prediction_problem
from loadtests.scenarios.iris_user import SETTINGS, IrisUser


class PredictUser(IrisUser):
    """POSTs iris instances to ``/predict`` and checks the predictions come back."""

    @task
    def predict(self) -> None:
        """One request; failed unless 200 with ``batch_size`` predictions."""
        with self.post_rows("/predict", "POST /predict") as response:
            # status 0: no answer at all; Locust reports the connection error itself.
            if response.status_code:
                problem = prediction_problem(
                    response.status_code, response.content, SETTINGS.batch_size
                )
                if problem is not None:
                    response.failure(problem)
