"""``digits``: handwritten digits 0-9 from 8x8 images (the prep-pred and data-cache patterns).

The data is scikit-learn's bundled ``load_digits``: 1797 images of 8x8 values
0..16, ink high on a 0 background (each value counts the inked pixels of a 4x4
block of the original 32x32 bitmap). A small multi-layer perceptron on the
standardised 64 values learns them; a quarter of the images, stratified, are
held out. Training runs on one thread, so the export gives the same bytes on
any machine.

Some held-out images are rendered as the PNG and JPEG samples the patterns
ship (:mod:`models.digit_samples`).
"""

from sklearn.datasets import load_digits
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from models.trained import SEED, Split, TrainedModel, stratified_split

DATASET = "sklearn.datasets.load_digits"
SIDE = 8
MAX_VALUE = 16


def digits_split() -> Split:
    """The digits split into training (75 %) and held-out (25 %) images (float32 rows of 64
    values 0..16), stratified."""
    return stratified_split(load_digits(), test_size=0.25)


def train_digits(hidden: int = 64, max_iter: int = 300) -> TrainedModel:
    """Digits 0-9: standardised 8x8 values into an MLP with one ``hidden``-unit layer."""
    split = digits_split()
    estimator = Pipeline(
        [
            ("scale", StandardScaler()),
            (
                "classify",
                MLPClassifier(
                    hidden_layer_sizes=(hidden,),
                    alpha=1e-3,
                    max_iter=max_iter,
                    random_state=SEED,
                ),
            ),
        ]
    )
    with threadpool_limits(limits=1):
        estimator.fit(split.x_train, split.y_train)
    return TrainedModel(
        estimator=estimator,
        description=(
            "Handwritten digit 0-9 from an 8x8 image, values 0..16 with ink high "
            "(row by row: pixel_0_0 .. pixel_7_7), as scikit-learn's load_digits."
        ),
        labels=[str(d) for d in range(10)],
        feature_names=split.feature_names,
        x_test=split.x_test,
        y_test=split.y_test,
        dataset=DATASET,
        training={
            "algorithm": f"StandardScaler + MLPClassifier({hidden} hidden units, relu, adam)",
            "n_train": len(split.x_train),
            "image": {"side": SIDE, "max_value": MAX_VALUE, "ink": "high"},
        },
    )
