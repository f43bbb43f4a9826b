"""batch: add rows for the next run (``POST /rows``); the runs themselves are timed by
``make batch-bench``, not by Locust."""

from __future__ import annotations

import orjson
from locust import task

from loadtests.scenarios.iris_user import SETTINGS, IrisUser


class BatchUser(IrisUser):
    """POSTs iris instances as pending rows and checks an id comes back for each."""

    @task
    def add_rows(self) -> None:
        """One request; failed unless 202 with ``batch_size`` ids."""
        with self.post_rows("/rows", "POST /rows") as response:
            if not response.status_code:
                return
            if response.status_code != 202:
                response.failure(f"HTTP {response.status_code}")
                return
            ids = orjson.loads(response.content or b"{}").get("ids")
            if not isinstance(ids, list) or len(ids) != SETTINGS.batch_size:
                response.failure(f"expected {SETTINGS.batch_size} ids")
