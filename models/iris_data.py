"""The iris data as the iris-based models of the playground split it.

Every model trained on iris here holds out the same rows (30 %, stratified,
seed :data:`models.trained.SEED`), so their held-out metrics are comparable and
a row held out by one is held out by all.
"""

from typing import Any

from sklearn.datasets import load_iris

from models.trained import Split, TrainedModel, stratified_split

DATASET = "sklearn.datasets.load_iris"
FEATURE_NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def iris_split() -> Split:
    """The iris rows split into training (70 %) and held-out (30 %) sets, stratified."""
    return stratified_split(load_iris(), test_size=0.3, feature_names=FEATURE_NAMES)


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
