"""prep-pred: POST /predict with image files, one per request, as a user would upload them.

The images are the pattern's samples (PNG and JPEG files of held-out digits),
mounted at ``/app/samples/prep-pred`` in the load-test container, or found in
the checkout when Locust runs on the host; ``SAMPLES_DIR`` points elsewhere
(see :class:`loadtests.payloads.ImagePayloads`). Each simulated user sends
them in its own seeded order, as the raw body with the file's image content
type. A request fails unless it is a 200 with one prediction (a wrong digit
is the model's error, not the service's).
"""

from __future__ import annotations

from locust import FastHttpUser, constant, task

from loadtests.config import load_settings
from loadtests.payloads import ImagePayloads
from loadtests.scenarios.common import prediction_problem, user_seed

SETTINGS = load_settings()


class ImageUser(FastHttpUser):
    """POSTs sample images to ``/predict`` and checks a prediction comes back."""

    wait_time = constant(SETTINGS.wait_seconds)

    def on_start(self) -> None:
        """Give this user its own order of the samples."""
        self.payloads = ImagePayloads(
            user_seed(SETTINGS.seed, self.environment), "prep-pred", SETTINGS.samples_dir
        )

    @task
    def predict(self) -> None:
        """One image; failed unless 200 with one prediction."""
        content_type, body = self.payloads.next()
        with self.client.post(
            "/predict",
            data=body,
            headers={"Content-Type": content_type},
            name="POST /predict",
            catch_response=True,
        ) as response:
            if response.status_code:  # status 0: no answer; Locust reports the error itself
                problem = prediction_problem(response.status_code, response.content, 1)
                if problem is not None:
                    response.failure(problem)
