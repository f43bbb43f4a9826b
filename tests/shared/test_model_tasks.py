"""Model checks by task: classifiers answer probabilities, anomaly models answer scores."""

import shutil
from pathlib import Path

import numpy as np
import orjson
import pytest

from shared.model.metadata import METADATA_FILE, ModelError
from shared.serving.model import OnnxModel


@pytest.fixture
def repo_copy(model_repo: Path, tmp_path: Path) -> Path:
    """A private copy of the exported repository, safe to damage."""
    shutil.copytree(model_repo, tmp_path / "models")
    return tmp_path / "models"


def edit_metadata(repo: Path, name: str, **changes: object) -> None:
    path = repo / name / "1" / METADATA_FILE
    path.write_bytes(orjson.dumps({**orjson.loads(path.read_bytes()), **changes}))


def test_an_anomaly_model_loads_and_answers_labels_and_scores(model_repo: Path) -> None:
    gate = OnnxModel.load(model_repo, "iris-gate")
    assert gate.metadata.task == "anomaly"
    assert gate.metadata.labels == ["outlier", "inlier"]
    rows = np.array([e["input"] for e in gate.metadata.examples], dtype=np.float32)
    labels, scores = gate.run(rows, ["label", "scores"])
    assert labels.shape == scores.shape == (len(rows), 1)
    names = {-1: "outlier", 1: "inlier"}
    assert [names[int(v)] for v in labels[:, 0]] == [e["label"] for e in gate.metadata.examples]
    assert ((scores[:, 0] < 0) == (labels[:, 0] == -1)).all()
    np.testing.assert_allclose(
        scores[:, 0], [e["score"] for e in gate.metadata.examples], atol=1e-4
    )


def test_an_unknown_task_is_refused(repo_copy: Path) -> None:
    edit_metadata(repo_copy, "iris", task="regression")
    with pytest.raises(
        ModelError, match="unknown task 'regression'; known: classification, anomaly"
    ):
        OnnxModel.load(repo_copy, "iris")


def test_an_anomaly_model_must_declare_scores(repo_copy: Path) -> None:
    edit_metadata(repo_copy, "iris", task="anomaly")  # a classifier's outputs
    with pytest.raises(ModelError, match=r"a anomaly model answers \['label', 'scores'\]"):
        OnnxModel.load(repo_copy, "iris")


def test_a_classifier_must_declare_probabilities(repo_copy: Path) -> None:
    edit_metadata(repo_copy, "iris-gate", task="classification")
    with pytest.raises(ModelError, match=r"answers \['label', 'probabilities'\]"):
        OnnxModel.load(repo_copy, "iris-gate")


def test_anomaly_labels_name_the_two_values(repo_copy: Path) -> None:
    edit_metadata(repo_copy, "iris-gate", labels=["odd", "normal", "maybe"])
    with pytest.raises(ModelError, match="3 labels for the anomaly values -1 and 1"):
        OnnxModel.load(repo_copy, "iris-gate")


def test_anomaly_scores_are_one_column(repo_copy: Path) -> None:
    path = repo_copy / "iris-gate" / "1" / METADATA_FILE
    metadata = orjson.loads(path.read_bytes())
    metadata["outputs"][1]["shape"] = [None, 2]
    path.write_bytes(orjson.dumps(metadata))
    with pytest.raises(ModelError, match=r"output 'scores': metadata says float32\[None, 2\]"):
        OnnxModel.load(repo_copy, "iris-gate")


def test_feature_names_must_match_the_input_for_every_task(repo_copy: Path) -> None:
    edit_metadata(repo_copy, "iris-gate", feature_names=["a", "b"])
    with pytest.raises(ModelError, match="2 feature names for input"):
        OnnxModel.load(repo_copy, "iris-gate")
