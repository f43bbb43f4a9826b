"""iris-boosted: deterministic, large, and trained on augmented rows only."""

from pathlib import Path

import numpy as np

from models.boosted import augment, train_iris_boosted
from models.export import to_onnx_bytes
from shared.serving.model import OnnxModel


def test_training_gives_the_same_onnx_bytes_twice() -> None:
    first = to_onnx_bytes(train_iris_boosted(n_iterations=10, augmented_rows=300))
    assert first == to_onnx_bytes(train_iris_boosted(n_iterations=10, augmented_rows=300))


def test_augmentation_keeps_the_rows_and_adds_jittered_copies_with_their_labels() -> None:
    x = np.array([[5.0, 3.0, 1.5, 0.2], [6.5, 3.0, 5.5, 2.0]], dtype=np.float32)
    y = np.array([0, 2])
    x_all, y_all = augment(x, y, n_rows=200, noise_cm=0.1, seed=0)
    assert x_all.shape == (202, 4)
    assert x_all.dtype == np.float32
    np.testing.assert_array_equal(x_all[:2], x)
    for row, label in zip(x_all[2:], y_all[2:], strict=True):
        assert np.abs(row - x[label // 2]).max() < 0.6  # near the row it was copied from
    assert (x_all >= 0.1).all()


def test_the_exported_model_is_the_large_ensemble(model_repo: Path) -> None:
    model = OnnxModel.load(model_repo, "iris-boosted")
    assert model.metadata.training["n_trees"] == 6000
    assert model.metadata.feature_names == OnnxModel.load(model_repo, "iris").metadata.feature_names
    example = model.metadata.examples[0]
    probabilities = model.predict_proba(np.array([example["input"]], dtype=np.float32))
    assert np.allclose(probabilities[0], example["probabilities"], atol=1e-5)
