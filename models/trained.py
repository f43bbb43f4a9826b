"""What a training function returns: a fitted estimator and what its metadata says.

The base every training module builds on; it imports nothing of ``models``, so the
registry (:mod:`models.specs`) can import the training modules without a cycle.
"""

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

SEED = 0


@dataclass
class TrainedModel:
    """A fitted scikit-learn model with what the metadata needs to say about it.

    ``task`` is ``classification`` (outputs ``label`` and ``probabilities``) or
    ``anomaly`` (an outlier detector: ``label`` 1 or -1 and ``scores``, with
    ``y_test`` in the same 1/-1 terms).
    """

    estimator: Any
    description: str
    labels: list[str]
    feature_names: list[str]
    x_test: np.ndarray
    y_test: np.ndarray
    dataset: str
    training: dict[str, Any] = field(default_factory=dict)
    task: str = "classification"

    def metrics(self) -> dict[str, float]:
        """Accuracy and macro F1 on the held-out rows."""
        predicted = self.estimator.predict(self.x_test)
        return {
            "accuracy": round(float(accuracy_score(self.y_test, predicted)), 6),
            "f1_macro": round(float(f1_score(self.y_test, predicted, average="macro")), 6),
        }
