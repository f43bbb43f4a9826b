"""The models the playground serves: how each is trained, from bundled data only.

Add a model by writing a function that returns a :class:`TrainedModel` and
naming it in :data:`TRAINING`. Training must be deterministic (fixed seeds), so
the same code always exports the same ONNX bytes and sha256.
"""

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

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


@dataclass(frozen=True)
class ModelSpec:
    """A model's name, version and training function."""

    name: str
    version: str
    train: Callable[[], TrainedModel]


def train_iris() -> TrainedModel:
    """Iris species from four flower measurements: scaled logistic regression."""
    data = load_iris()
    x = data.data.astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, data.target, test_size=0.3, random_state=SEED, stratify=data.target
    )
    estimator = Pipeline(
        [
            ("scale", StandardScaler()),
            ("classify", LogisticRegression(max_iter=1000, random_state=SEED)),
        ]
    ).fit(x_train, y_train)
    return TrainedModel(
        estimator=estimator,
        description="Iris species from sepal and petal length and width (cm).",
        labels=[str(name) for name in data.target_names],
        feature_names=["sepal_length", "sepal_width", "petal_length", "petal_width"],
        x_test=x_test,
        y_test=y_test,
        dataset="sklearn.datasets.load_iris",
        training={"algorithm": "StandardScaler + LogisticRegression", "n_train": len(x_train)},
    )


# Every model of the playground: name -> (version, module, training function), in one table
# that compose/starter.py reads without importing it. A starter carries only the modules of its
# pattern's models, so SPECS holds the models whose module is present (tests/models checks that
# the playground has them all). The modules build on TrainedModel above, which is why the table
# is resolved here, at the end (models/__init__.py loads this module first).
TRAINING: dict[str, tuple[str, str, str]] = {
    "iris": ("1", "models.specs", "train_iris"),
    "iris-gate": ("1", "models.serial", "train_iris_gate"),
    "iris-specialist": ("1", "models.serial", "train_iris_specialist"),
    "iris-forest": ("1", "models.ensemble", "train_iris_forest"),
    "iris-bayes": ("1", "models.ensemble", "train_iris_bayes"),
    "iris-boosted": ("1", "models.boosted", "train_iris_boosted"),
    "digits": ("1", "models.digits", "train_digits"),
}

SPECS: dict[str, ModelSpec] = {
    name: ModelSpec(name, version, getattr(importlib.import_module(module), function))
    for name, (version, module, function) in TRAINING.items()
    if importlib.util.find_spec(module) is not None
}
