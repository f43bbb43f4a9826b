"""prediction-cache: POST /predict with a share of repeated inputs; hits and misses timed apart.

``REPEAT_SHARE`` (0..1) of the requests reuse one of 16 bodies that every user
shares (one ``pool_seed``); the others are fresh rows with
:data:`FRESH_DECIMALS` decimals, so that a fresh input is new to the cache
too. Each request is reported under the ``X-Cache`` answer it got,
``POST /predict [hit]``, ``[miss]``, ``[coalesced]`` or ``[bypass]``, so the
report shows hit and miss latency side by side; Locust's ``Aggregated`` row
is all of them together.

    make load PATTERN=prediction-cache REPEAT_SHARE=0.9
"""

from __future__ import annotations

from locust import task

from loadtests.scenarios.common import prediction_problem
from loadtests.scenarios.iris_user import SETTINGS, IrisUser

#: Decimals of the fresh rows: with iris's own 1, a long run draws the same rows by chance.
FRESH_DECIMALS = 3
CACHE_HEADER = "X-Cache"


def request_name(cache_result: str | None) -> str:
    """The stats entry of a request: by its ``X-Cache`` answer."""
    return f"POST /predict [{cache_result or f'no {CACHE_HEADER}'}]"


class CachedPredictUser(IrisUser):
    """POSTs iris rows, a share of them repeated, and files each answer under its X-Cache."""

    # Its own fresh rows, and the pool of repeated bodies every user shares.
    payload_options = {"decimals": FRESH_DECIMALS}

    @task
    def predict(self) -> None:
        """One request; failed unless 200 with ``batch_size`` predictions and an X-Cache."""
        with self.post_rows("/predict", request_name(None)) as response:
            if not response.status_code:  # no answer at all: Locust reports the error itself
                return
            cache_result = response.headers.get(CACHE_HEADER)
            response.request_meta["name"] = request_name(cache_result)
            problem = prediction_problem(
                response.status_code, response.content, SETTINGS.batch_size
            )
            if problem is None and cache_result is None:
                problem = f"no {CACHE_HEADER} header"
            if problem is not None:
                response.failure(problem)
