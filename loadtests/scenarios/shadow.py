"""shadow: POST /predict, as for sync; the mirror to the candidate is the api's own business.

The user's requests and checks are :class:`PredictUser`'s: the answers are the primary's,
so a mirror that fails or is dropped must never show here. What the candidate did is read
from the api's ``/metrics`` afterwards (``make shadow-report``).
"""

from __future__ import annotations

from loadtests.scenarios.predict import PredictUser


class ShadowUser(PredictUser):
    """POSTs iris instances to the shadow api's ``/predict``; the primary answers them."""
