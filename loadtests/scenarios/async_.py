"""async: submit a job, poll it until it ends; the end-to-end time is its own entry.

Each task is one job: ``POST /predict`` (Locust times the submit), then
``GET /jobs/{id}?wait_s=POLL_WAIT_S`` until the job has finished or failed (each
poll timed as ``GET /jobs/[id]``): the api answers as soon as the job ends, or after
``POLL_WAIT_S`` with the job as it stands, so a job usually costs a submit and one
poll. A poll that did not see the end is followed by another after ``POLL_SECONDS``
(``POLL_WAIT_S=0``: plain polls every ``POLL_SECONDS``, as a client without long
polling would). Then ``E2E job completed`` reports the time from just before the
submit to the poll that saw the answer. A job that fails, or takes longer than
``JOB_DEADLINE``, is a failure of the E2E entry.
"""

from __future__ import annotations

import time

import orjson
from locust import task

from loadtests.scenarios.common import (
    accepted_job_url,
    fire_timing,
    job_problem,
)
from loadtests.scenarios.iris_user import SETTINGS, IrisUser


class AsyncUser(IrisUser):
    """Submits iris instances as jobs and polls each to the end."""

    @task
    def submit_and_poll(self) -> None:
        """One job from submit to result."""
        started = time.perf_counter()
        with self.post_rows("/predict", "POST /predict") as response:
            if not response.status_code:  # no answer: Locust reports the connection error
                return
            url, problem = accepted_job_url(response.status_code, response.content)
            if problem is not None:
                response.failure(problem)
                return
        self._poll(url, started)

    def _poll(self, url: str, started: float) -> None:
        deadline = started + SETTINGS.job_deadline
        if SETTINGS.poll_wait_s:
            url = f"{url}?wait_s={SETTINGS.poll_wait_s:g}"
        while True:
            with self.client.get(url, name="GET /jobs/[id]", catch_response=True) as response:
                if response.status_code != 200:
                    if response.status_code:
                        response.failure(f"HTTP {response.status_code}")
                    self._completed(started, "the job could not be polled")
                    return
                job = orjson.loads(response.content or b"{}")
            if job.get("status") in ("finished", "failed"):
                self._completed(started, job_problem(job, SETTINGS.batch_size))
                return
            if time.perf_counter() > deadline:
                self._completed(started, f"not done within {SETTINGS.job_deadline} s")
                return
            time.sleep(SETTINGS.poll_seconds)  # gevent-patched: other users run meanwhile

    def _completed(self, started: float, problem: str | None) -> None:
        """Report the job's end-to-end time (a failure when ``problem`` says why)."""
        fire_timing(self.environment, "E2E", "job completed", started, exception=problem)
