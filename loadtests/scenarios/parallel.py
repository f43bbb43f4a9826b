"""parallel: the sync fan-out (POST /predict) and the async one (POST /jobs, then polling).

Each simulated user mixes both, three to one: ``POST /predict`` like every
pattern, and a job submitted with ``POST /jobs`` then polled with
``GET /jobs/[id]`` until it is final, whose time from submission to the final
vote is reported as ``E2E job completed``. Run the sync half alone with
Locust's tags: ``--exclude-tags jobs``.
"""

from __future__ import annotations

import time

import orjson
from locust import tag, task

from loadtests.scenarios.common import fire_timing
from loadtests.scenarios.predict import PredictUser

#: Seconds between polls of a job, and how long a job may take before it counts as failed.
POLL_INTERVAL_S = 0.05
JOB_TIMEOUT_S = 15.0


class ParallelUser(PredictUser):
    """``PredictUser`` plus async jobs: submit, poll until final, report the whole time."""

    # PredictUser's predict task is inherited once; twice more here: three predicts a job.
    tasks = {PredictUser.predict: 2}

    @tag("jobs")
    @task
    def job(self) -> None:
        """Submit the rows as a job and poll it until its vote is final."""
        started = time.perf_counter()
        with self.post_rows("/jobs", "POST /jobs") as response:
            if response.status_code != 202:
                response.failure(f"HTTP {response.status_code}")
                return
            url = orjson.loads(response.content)["url"]
        problem = self._poll(url, started + JOB_TIMEOUT_S)
        fire_timing(self.environment, "E2E", "job completed", started, exception=problem)

    def _poll(self, url: str, give_up_at: float) -> str | None:
        while time.perf_counter() < give_up_at:
            with self.client.get(url, name="GET /jobs/[id]", catch_response=True) as response:
                if response.status_code != 200:
                    response.failure(f"HTTP {response.status_code}")
                    return f"poll answered HTTP {response.status_code}"
                status = orjson.loads(response.content)["status"]
            if status == "finished":
                return None
            if status == "failed":
                return "job failed"
            time.sleep(POLL_INTERVAL_S)
        return f"not final within {JOB_TIMEOUT_S} s"
