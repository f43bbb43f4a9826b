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

from models.iris_data import fitted_on_iris
from models.trained import SEED, TrainedModel

DESCRIPTION = "Iris species from sepal and petal length and width (cm)."


def _train(regularisation_c: float, algorithm: str) -> TrainedModel:
    estimator = Pipeline(
        [
            ("scale", StandardScaler()),
            (
                "classify",
                LogisticRegression(C=regularisation_c, max_iter=1000, random_state=SEED),
            ),
        ]
    )
    return fitted_on_iris(estimator, algorithm, DESCRIPTION)


def train_iris() -> TrainedModel:
    """Version 1: scaled logistic regression (C=1)."""
    return _train(1.0, "StandardScaler + LogisticRegression")


def train_iris_v2() -> TrainedModel:
    """Version 2: the same pipeline, regularised ten times less (C=10)."""
    return _train(10.0, "StandardScaler + LogisticRegression(C=10)")
