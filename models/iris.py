"""``iris``: the playground's own model, in two versions.

Version 1 is a scaled logistic regression, what every iris pattern serves by
default. Version 2 is the same pipeline trained with other settings (ten times
weaker regularisation): sharper probabilities and its own held-out metrics,
the candidate of a rolling update (``make rollout MODEL_VERSION=2``). Both
train on the same rows and hold out the same rows, so their metrics compare.
"""

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from models.iris_data import DATASET, FEATURE_NAMES, iris_split
from models.trained import SEED, TrainedModel

DESCRIPTION = "Iris species from sepal and petal length and width (cm)."


def _train(regularisation_c: float, algorithm: str) -> TrainedModel:
    split = iris_split()
    estimator = Pipeline(
        [
            ("scale", StandardScaler()),
            (
                "classify",
                LogisticRegression(C=regularisation_c, max_iter=1000, random_state=SEED),
            ),
        ]
    ).fit(split.x_train, split.y_train)
    return TrainedModel(
        estimator=estimator,
        description=DESCRIPTION,
        labels=split.labels,
        feature_names=FEATURE_NAMES,
        x_test=split.x_test,
        y_test=split.y_test,
        dataset=DATASET,
        training={"algorithm": algorithm, "n_train": len(split.x_train)},
    )


def train_iris() -> TrainedModel:
    """Version 1: scaled logistic regression (C=1)."""
    return _train(1.0, "StandardScaler + LogisticRegression")


def train_iris_v2() -> TrainedModel:
    """Version 2: the same pipeline, regularised ten times less (C=10)."""
    return _train(10.0, "StandardScaler + LogisticRegression(C=10)")
