"""The iris data as the iris-based models of the playground split it.

Every model trained on iris here holds out the same rows (30 %, stratified,
seed :data:`models.trained.SEED`), so their held-out metrics are comparable and
a row held out by one is held out by all.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split

from models.trained import SEED, TrainedModel

DATASET = "sklearn.datasets.load_iris"
FEATURE_NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@dataclass(frozen=True)
class IrisSplit:
    """Training and held-out rows (float32) with their class indices and names."""

    x_train: np.ndarray
    x_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    labels: list[str]


def iris_split() -> IrisSplit:
    """The iris rows split into training (70 %) and held-out (30 %) sets."""
    data = load_iris()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data.astype(np.float32),
        data.target,
        test_size=0.3,
        random_state=SEED,
        stratify=data.target,
    )
    return IrisSplit(x_train, x_test, y_train, y_test, [str(n) for n in data.target_names])


def fitted_on_iris(estimator: Any, algorithm: str, description: str) -> TrainedModel:
    """``estimator`` fitted on the iris training rows, with the held-out rows to score it."""
    split = iris_split()
    return TrainedModel(
        estimator=estimator.fit(split.x_train, split.y_train),
        description=description,
        labels=split.labels,
        feature_names=FEATURE_NAMES,
        x_test=split.x_test,
        y_test=split.y_test,
        dataset=DATASET,
        training={"algorithm": algorithm, "n_train": len(split.x_train)},
    )
