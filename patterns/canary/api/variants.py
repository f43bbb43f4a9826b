"""What the canary api records per variant, as Prometheus metrics (``make canary-report``).

* ``mlsp_canary_assigned_total{variant}``: requests the split gave each variant.
* ``mlsp_canary_latency_seconds{variant}``: from a request's first predictor call until its
  answer, by the variant that answered (a fallback's time, failed canary call included,
  is the primary's).
* ``mlsp_canary_rows_total{variant,label}``: rows answered, by variant and label: the
  label distribution of each.
* ``mlsp_canary_errors_total{variant,code}``: failed calls to a variant's predictor
  (``dependency_unavailable``, ``dependency_timeout``, ...), those followed by a fallback
  included.
* ``mlsp_canary_fallbacks_total``: requests given to the canary that the primary answered
  because the canary's call failed.
"""

from collections import Counter as Tally

import numpy as np
from prometheus_client import Counter, Histogram

from shared.kit.metrics import LATENCY_BUCKETS

ASSIGNED = Counter("mlsp_canary_assigned", "Requests the split gave each variant.", ["variant"])
LATENCY = Histogram(
    "mlsp_canary_latency_seconds",
    "From a request's first predictor call until its answer, by the variant that answered.",
    ["variant"],
    buckets=LATENCY_BUCKETS,
)
ROWS = Counter("mlsp_canary_rows", "Rows answered, by variant and label.", ["variant", "label"])
ERRORS = Counter(
    "mlsp_canary_errors", "Failed calls to a variant's predictor, by code.", ["variant", "code"]
)
FALLBACKS = Counter(
    "mlsp_canary_fallbacks",
    "Requests given to the canary that the primary answered because the canary's call failed.",
)


def record_answer(
    variant: str, labels: list[str], probabilities: np.ndarray, seconds: float
) -> None:
    """Count an answer of ``variant``: its time and each row's label."""
    LATENCY.labels(variant).observe(seconds)
    for best, rows in Tally(probabilities.argmax(axis=1).tolist()).items():
        ROWS.labels(variant, labels[best]).inc(rows)
