"""The members of the parallel pattern's ensemble, beside the plain ``iris`` model.

Three algorithms that see the same iris rows differently, so that a soft
vote of their probabilities has something to average: the ``iris`` logistic
regression (one linear boundary per class), ``iris-forest`` (a random
forest: axis-aligned splits) and ``iris-bayes`` (Gaussian naive Bayes: one
normal distribution per class and feature).
"""

from typing import Any

from sklearn.ensemble import RandomForestClassifier
from sklearn.naive_bayes import GaussianNB

from models.iris_data import fitted_on_iris
from models.trained import SEED, TrainedModel


def _iris_member(estimator: Any, algorithm: str, short: str) -> TrainedModel:
    """``estimator`` fitted on the iris training rows, with its held-out rows."""
    description = f"Iris species from sepal and petal length and width (cm): {short}"
    return fitted_on_iris(estimator, algorithm, description)


def train_iris_forest() -> TrainedModel:
    """Iris species: a small random forest (30 trees of depth 4)."""
    return _iris_member(
        RandomForestClassifier(n_estimators=30, max_depth=4, random_state=SEED),
        "RandomForest(30 trees, depth 4)",
        "random forest",
    )


def train_iris_bayes() -> TrainedModel:
    """Iris species: Gaussian naive Bayes."""
    return _iris_member(GaussianNB(), "GaussianNB", "naive Bayes")
