"""``iris-boosted``: a large gradient-boosted tree ensemble, costly to run on purpose.

The prediction-cache pattern needs a model whose inference clearly costs more
than a Redis round trip, the way a production tree ensemble does. Iris itself
is too small to grow big trees: 105 training rows give a few leaves per tree.
So the training rows are augmented with noisy copies of themselves (seeded
Gaussian jitter, labels kept), and a histogram gradient boosting grows
``n_iterations`` rounds of one tree per class, each with up to
``max_leaf_nodes`` leaves. The held-out rows are the real iris rows every
iris model of the playground holds out, so the metrics are comparable.

It takes the same four features as ``iris`` (same ``/predict`` contract and
load-test payloads), and outputs ``label`` and ``probabilities`` like it.
Training runs on one thread: histogram sums then add up in one fixed order,
so the export gives the same bytes on any machine (and two busy cores are not
slowed down further by OpenMP threads waiting on each other).
"""

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from models.iris_data import DATASET, FEATURE_NAMES, iris_split
from models.trained import SEED, TrainedModel


def augment(
    x: np.ndarray, y: np.ndarray, n_rows: int, noise_cm: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``x`` and ``y`` followed by ``n_rows`` jittered copies of random rows (float32)."""
    rng = np.random.default_rng(seed)
    picked = rng.integers(0, len(x), n_rows)
    jittered = x[picked] + rng.normal(0.0, noise_cm, (n_rows, x.shape[1]))
    x_all = np.vstack([x, np.clip(jittered, 0.1, None)]).astype(np.float32)
    return x_all, np.concatenate([y, y[picked]])


def train_iris_boosted(
    n_iterations: int = 2000,
    max_leaf_nodes: int = 63,
    augmented_rows: int = 5000,
    noise_cm: float = 0.3,
) -> TrainedModel:
    """Iris species: ``n_iterations`` x 3 boosted trees on noise-augmented training rows."""
    split = iris_split()
    x_fit, y_fit = augment(split.x_train, split.y_train, augmented_rows, noise_cm, SEED)
    estimator = HistGradientBoostingClassifier(
        max_iter=n_iterations,
        max_leaf_nodes=max_leaf_nodes,
        learning_rate=0.05,
        min_samples_leaf=5,
        early_stopping=False,
        random_state=SEED,
    )
    with threadpool_limits(limits=1, user_api="openmp"):
        estimator.fit(x_fit, y_fit)
    n_classes = len(split.labels)
    return TrainedModel(
        estimator=estimator,
        description=(
            "Iris species from sepal and petal length and width (cm): a large gradient-boosted "
            "tree ensemble, costly to run on purpose (the prediction-cache pattern's model)."
        ),
        labels=split.labels,
        feature_names=FEATURE_NAMES,
        x_test=split.x_test,
        y_test=split.y_test,
        dataset=DATASET,
        training={
            "algorithm": (
                f"HistGradientBoosting({n_iterations} rounds x {n_classes} trees, "
                f"<= {max_leaf_nodes} leaves each)"
            ),
            "n_trees": n_iterations * n_classes,
            "n_train": len(split.x_train),
            "augmented_rows": augmented_rows,
            "augmentation_noise_cm": noise_cm,
        },
    )
