"""What a training function returns: a fitted estimator and what its metadata says.

The base every training module builds on; it imports nothing of ``models``, so the
registry (:mod:`models.specs`) can import the training modules without a cycle.
"""

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split

SEED = 0


@dataclass(frozen=True)
class Split:
    """Training and held-out rows (float32), their class indices, class names and feature names."""

    x_train: np.ndarray
    x_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    labels: list[str]
    feature_names: list[str]


def stratified_split(data: Any, test_size: float, feature_names: list[str] | None = None) -> Split:
    """A scikit-learn bundled data set (``load_*()``) split with every class in both parts.

    ``feature_names`` overrides the data set's own (iris's carry units: "sepal length (cm)").
    """
    x_train, x_test, y_train, y_test = train_test_split(
        data.data.astype(np.float32),
        data.target,
        test_size=test_size,
        random_state=SEED,
        stratify=data.target,
    )
    labels = [str(n) for n in data.target_names]
    names = feature_names or [str(n) for n in data.feature_names]
    return Split(x_train, x_test, y_train, y_test, labels, names)


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
