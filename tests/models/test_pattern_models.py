"""The serial pattern's gate and specialist, and the parallel pattern's ensemble members."""

from pathlib import Path

import numpy as np
import pytest

from models.export import export
from models.iris_data import FEATURE_NAMES, iris_split
from models.serial import corrupted_rows, train_iris_gate
from models.specs import SPECS
from shared.model.metadata import MODEL_FILE, sha256_of
from shared.serving.model import OnnxModel

PATTERN_MODELS = ["iris-gate", "iris-specialist", "iris-forest", "iris-bayes"]


@pytest.mark.parametrize("name", PATTERN_MODELS)
def test_export_is_deterministic(name: str, model_repo: Path, tmp_path: Path) -> None:
    metadata = export(SPECS[name], tmp_path)
    assert metadata.sha256 == sha256_of(model_repo / name / "1" / MODEL_FILE)
    assert metadata.feature_names == FEATURE_NAMES
    assert metadata.training["dataset"] == "sklearn.datasets.load_iris"


def test_the_gate_lets_iris_through_and_stops_damaged_rows(model_repo: Path) -> None:
    gate = OnnxModel.load(model_repo, "iris-gate")
    split = iris_split()
    (held_out,) = gate.run(split.x_test, ["label"])
    assert (held_out == 1).all()
    (damaged,) = gate.run(corrupted_rows(split.x_test), ["label"])
    kinds = np.arange(len(split.x_test)) % 3
    caught = [float((damaged[kinds == k] == -1).mean()) for k in range(3)]
    assert caught[0] == 1.0  # millimetres
    assert caught[1] >= 0.5  # sepal and petal length swapped
    assert caught[2] >= 0.9  # noise
    assert gate.metadata.metrics["accuracy"] > 0.9


def test_the_gate_is_trained_on_the_training_rows_only() -> None:
    trained = train_iris_gate()
    split = iris_split()
    assert len(trained.x_test) == 2 * len(split.x_test)
    assert sorted(set(trained.y_test.tolist())) == [-1, 1]
    assert trained.training["n_train"] == len(split.x_train)


def test_the_specialist_knows_the_confusable_pair(model_repo: Path) -> None:
    specialist = OnnxModel.load(model_repo, "iris-specialist")
    assert specialist.metadata.labels == ["versicolor", "virginica"]
    split = iris_split()
    pair = split.y_test > 0
    predicted = specialist.predict_proba(split.x_test[pair]).argmax(axis=1)
    assert (predicted == split.y_test[pair] - 1).mean() > 0.9


@pytest.mark.parametrize("name", ["iris-forest", "iris-bayes"])
def test_ensemble_members_speak_like_iris(name: str, model_repo: Path) -> None:
    member = OnnxModel.load(model_repo, name).metadata
    iris = OnnxModel.load(model_repo, "iris").metadata
    assert (member.labels, member.feature_names, member.outputs) == (
        iris.labels,
        iris.feature_names,
        iris.outputs,
    )
    assert member.training["algorithm"] != iris.training["algorithm"]
