"""canary: POST /predict as for sync, each simulated user with its own ``X-Client-Id``.

The api hashes that key to a variant, so each user sticks to the primary or the canary
while the weights stand, as a real client would; the answers are checked like sync's
(a fallback to the primary is still a good answer). What each variant did is read from
the api's ``/metrics`` afterwards (``make canary-report``).
"""

from __future__ import annotations

import itertools

from loadtests.scenarios.predict import PredictUser

_users = itertools.count()


class CanaryUser(PredictUser):
    """POSTs iris instances to the canary api's ``/predict`` as client ``locust-<n>``."""

    def on_start(self) -> None:
        """The payload stream, and this user's client key."""
        super().on_start()
        self.request_headers = {**self.request_headers, "X-Client-Id": f"locust-{next(_users)}"}
