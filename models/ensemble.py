"""The members of the parallel pattern's ensemble, beside the plain ``iris`` model.

Three algorithms that see the same iris rows differently, so that a soft
vote of their probabilities has something to average: the ``iris`` logistic
regression (one linear boundary per class), ``iris-forest`` (a random
forest: axis-aligned splits) and ``iris-bayes`` (Gaussian naive Bayes: one
normal distribution per class and feature).
"""

from sklearn.ensemble import RandomForestClassifier
from sklearn.naive_bayes import GaussianNB

from models.iris_data import DATASET, FEATURE_NAMES, iris_split
from models.specs import SEED, TrainedModel


def train_iris_forest() -> TrainedModel:
    """Iris species: a small random forest (30 trees of depth 4)."""
    split = iris_split()
    estimator = RandomForestClassifier(n_estimators=30, max_depth=4, random_state=SEED).fit(
        split.x_train, split.y_train
    )
    return TrainedModel(
        estimator=estimator,
        description="Iris species from sepal and petal length and width (cm): random forest",
        labels=split.labels,
        feature_names=FEATURE_NAMES,
        x_test=split.x_test,
        y_test=split.y_test,
        dataset=DATASET,
        training={"algorithm": "RandomForest(30 trees, depth 4)", "n_train": len(split.x_train)},
    )


def train_iris_bayes() -> TrainedModel:
    """Iris species: Gaussian naive Bayes."""
    split = iris_split()
    estimator = GaussianNB().fit(split.x_train, split.y_train)
    return TrainedModel(
        estimator=estimator,
        description="Iris species from sepal and petal length and width (cm): naive Bayes",
        labels=split.labels,
        feature_names=FEATURE_NAMES,
        x_test=split.x_test,
        y_test=split.y_test,
        dataset=DATASET,
        training={"algorithm": "GaussianNB", "n_train": len(split.x_train)},
    )
