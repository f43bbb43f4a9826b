"""The models of the serial pattern's chain: an outlier gate and a specialist.

The chain is gate -> classifier -> specialist. The classifier is the plain
``iris`` model; the two here are trained for the stages around it:

* ``iris-gate`` (task ``anomaly``): an IsolationForest on whitened features
  that answers ``label`` 1 (inlier) or -1 (outlier) and ``scores`` (below 0
  means outlier). It keeps rows that do not look like iris flowers at all
  (measured in mm instead of cm, columns swapped, noise) away from the
  classifier, whose probabilities would be confidently meaningless for them.
* ``iris-specialist``: a logistic regression on quadratic features, fitted to
  the one pair of species the classifier confuses, versicolor and virginica,
  and asked only about the rows the classifier is unsure of.
"""

import numpy as np
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler

from models.iris_data import DATASET, FEATURE_NAMES, iris_split
from models.trained import SEED, TrainedModel

INLIER, OUTLIER = 1, -1
#: Share of the training rows the gate may call outliers: it sets the threshold.
GATE_CONTAMINATION = 0.01
#: Few trees: skl2onnx's IsolationForest conversion time grows faster than the tree count
#: (30 trees: under a second; 100: about 8 s), and the export runs in every `make up`.
GATE_TREES = 30
#: The pair of species the specialist tells apart (indices into the iris labels).
SPECIALIST_CLASSES = (1, 2)


def corrupted_rows(rows: np.ndarray, seed: int = SEED) -> np.ndarray:
    """Out-of-distribution copies of iris ``rows``, one kind of damage per row in turn.

    The mistakes a real feed makes: values in millimetres instead of
    centimetres, sepal and petal length swapped, and uniform noise over 0-10 cm.
    """
    rng = np.random.default_rng(seed)
    damaged = rows.copy()
    kind = np.arange(len(rows)) % 3
    damaged[kind == 0] *= 10
    damaged[kind == 1] = damaged[kind == 1][:, [2, 1, 0, 3]]
    damaged[kind == 2] = rng.uniform(0, 10, size=(int((kind == 2).sum()), rows.shape[1]))
    return damaged.astype(np.float32)


def train_iris_gate() -> TrainedModel:
    """Outlier gate: IsolationForest on standardised, PCA-whitened iris measurements."""
    split = iris_split()
    estimator = Pipeline(
        [
            ("scale", StandardScaler()),
            ("whiten", PCA(whiten=True, random_state=SEED)),
            (
                "isolate",
                IsolationForest(
                    n_estimators=GATE_TREES,
                    max_samples=64,
                    contamination=GATE_CONTAMINATION,
                    random_state=SEED,
                ),
            ),
        ]
    ).fit(split.x_train)
    outliers = corrupted_rows(split.x_test)
    return TrainedModel(
        estimator=estimator,
        description=(
            "Outlier gate for iris measurements (cm): label 1 inlier, -1 outlier; "
            "scores below 0 are outliers."
        ),
        labels=["outlier", "inlier"],
        feature_names=FEATURE_NAMES,
        x_test=np.vstack([split.x_test, outliers]),
        y_test=np.array([INLIER] * len(split.x_test) + [OUTLIER] * len(outliers)),
        dataset=DATASET,
        training={
            "algorithm": f"StandardScaler + PCA(whiten) + IsolationForest({GATE_TREES} trees)",
            "contamination": GATE_CONTAMINATION,
            "n_train": len(split.x_train),
            "test_outliers": "held-out rows in mm, with lengths swapped, or uniform noise",
        },
        task="anomaly",
    )


def train_iris_specialist() -> TrainedModel:
    """Versicolor vs virginica: logistic regression on scaled quadratic features."""
    split = iris_split()
    pair = list(SPECIALIST_CLASSES)
    in_train = np.isin(split.y_train, pair)
    in_test = np.isin(split.y_test, pair)
    estimator = Pipeline(
        [
            ("quadratic", PolynomialFeatures(degree=2)),
            ("scale", StandardScaler()),
            ("classify", LogisticRegression(C=10, max_iter=5000, random_state=SEED)),
        ]
    ).fit(split.x_train[in_train], split.y_train[in_train] - pair[0])
    return TrainedModel(
        estimator=estimator,
        description="Versicolor or virginica, for iris rows the classifier is unsure of.",
        labels=[split.labels[k] for k in pair],
        feature_names=FEATURE_NAMES,
        x_test=split.x_test[in_test],
        y_test=split.y_test[in_test] - pair[0],
        dataset=DATASET,
        training={
            "algorithm": "PolynomialFeatures(2) + StandardScaler + LogisticRegression(C=10)",
            "classes": [split.labels[k] for k in pair],
            "n_train": int(in_train.sum()),
        },
    )
