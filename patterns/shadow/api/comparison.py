"""What shadowing records: both models' latency and labels, row by row, as Prometheus metrics.

* ``mlsp_shadow_latency_seconds{model}``: time a request waited for its answer from the
  ``primary`` model (every request, shadowed or not), and time a mirrored call waited
  for the ``candidate``'s (each call that got one; a call carries the rows of one
  ``SHADOW_WINDOW_MS`` window, so with a window of 0 it is one request's, as the primary's).
* ``mlsp_shadow_rows_total{primary_label,candidate_label}``: each mirrored row the candidate
  answered, by both labels; where they are equal, the models agree. The confusion table
  of primary against candidate, and so the agreement rate, are read from it
  (``make shadow-report``).

Mirrored calls that failed, timed out or were dropped are in ``mlsp_mirror_calls_total``
(:mod:`mirror`).
"""

from collections import Counter as Tally

import numpy as np
from prometheus_client import Counter, Histogram

from shared.kit.metrics import LATENCY_BUCKETS

LATENCY = Histogram(
    "mlsp_shadow_latency_seconds",
    "Time from a call to the primary or the candidate model until its answer, per request.",
    ["model"],
    buckets=LATENCY_BUCKETS,
)
ROWS = Counter(
    "mlsp_shadow_rows",
    "Mirrored rows the candidate answered, by the primary's and the candidate's label.",
    ["primary_label", "candidate_label"],
)
PRIMARY_LATENCY = LATENCY.labels("primary")
CANDIDATE_LATENCY = LATENCY.labels("candidate")


class Comparison:
    """Records a mirrored request's candidate answer against the primary's (same labels)."""

    def __init__(self, labels: list[str]) -> None:
        self.labels = labels

    def record(self, primary_best: np.ndarray, candidate_probabilities: np.ndarray) -> None:
        """Count each row by its two labels (class indexes ``primary_best`` and the
        candidate's most probable class)."""
        candidate_best = candidate_probabilities.argmax(axis=1)
        pairs = Tally(zip(primary_best.tolist(), candidate_best.tolist(), strict=True))
        for (primary, candidate), rows in pairs.items():
            ROWS.labels(self.labels[primary], self.labels[candidate]).inc(rows)

    def answered(
        self, primary_best: np.ndarray, outputs: dict[str, np.ndarray], seconds: float
    ) -> None:
        """A :class:`mirror.RowWindow` ``on_answer``: the candidate's time and labels."""
        CANDIDATE_LATENCY.observe(seconds)
        self.record(primary_best, outputs["probabilities"])
