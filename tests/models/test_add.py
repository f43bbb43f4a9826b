"""models.add turns an .onnx file or a joblib classifier into a served repository entry,
and refuses, in one line, what the services could not serve."""

from pathlib import Path

import joblib
import numpy as np
import pytest
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LinearRegression, LogisticRegression

from models.add import add, added_models, main
from models.export import main as export_main
from models.iris_data import FEATURE_NAMES, iris_split
from shared.model.metadata import MODEL_FILE, sha256_of
from shared.serving.model import OnnxModel

SPECIES = ["setosa", "versicolor", "virginica"]


class HandMadeClassifier(ClassifierMixin, BaseEstimator):
    """A classifier skl2onnx knows no converter for."""

    def fit(self, x: np.ndarray, y: np.ndarray) -> "HandMadeClassifier":
        self.classes_ = np.unique(y)
        self.n_features_in_ = x.shape[1]
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.full((len(x), len(self.classes_)), 1 / len(self.classes_))


def iris_classifier() -> LogisticRegression:
    """A logistic regression fitted on the iris training rows (classes 0, 1, 2)."""
    split = iris_split()
    return LogisticRegression(max_iter=500).fit(split.x_train, split.y_train)


def saved(tmp_path: Path, estimator: object, name: str = "model.joblib") -> Path:
    path = tmp_path / name
    joblib.dump(estimator, path)
    return path


def onnx_file(tmp_path: Path, estimator: object, n_features: int | None, **options) -> Path:
    model = convert_sklearn(
        estimator, initial_types=[("x", FloatTensorType([None, n_features]))], **options
    )
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def refusal(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_a_joblib_classifier_is_converted_checked_and_served(tmp_path: Path) -> None:
    split = iris_split()
    estimator = LogisticRegression(max_iter=500).fit(
        split.x_train, np.array(SPECIES)[split.y_train]
    )
    out = tmp_path / "repo"
    metadata = add(saved(tmp_path, estimator), "flowers", out, features=FEATURE_NAMES)
    assert (metadata.name, metadata.version, metadata.labels) == ("flowers", "1", SPECIES)
    assert metadata.sha256 == sha256_of(out / "flowers" / "1" / MODEL_FILE)
    assert metadata.training["onnx_max_abs_diff"] < 1e-4
    model = OnnxModel.load(out, "flowers")
    np.testing.assert_allclose(
        model.predict_proba(split.x_test), estimator.predict_proba(split.x_test), atol=1e-4
    )
    assert add(saved(tmp_path, estimator), "flowers", out).version == "2"  # the next one


def test_an_onnx_file_gets_its_labels_and_shapes_from_the_graph(tmp_path: Path) -> None:
    estimator = iris_classifier()
    path = onnx_file(tmp_path, estimator, 4, options={"zipmap": False})
    metadata = add(path, "iris-own", tmp_path / "repo", version="3")
    assert metadata.labels == ["0", "1", "2"]
    assert [(t.name, t.shape) for t in metadata.inputs] == [("x", [None, 4])]
    assert [t.name for t in metadata.outputs] == ["label", "probabilities"]
    relabelled = add(path, "iris-own", tmp_path / "repo", labels=SPECIES)
    assert (relabelled.version, relabelled.labels) == ("4", SPECIES)


def test_export_copies_an_added_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    added = tmp_path / "added"
    estimator = iris_classifier()
    add(saved(tmp_path, estimator), "mine", added, labels=SPECIES)
    monkeypatch.setattr("models.export.added_models", lambda: added_models(added))
    assert export_main(["--out", str(tmp_path / "volume"), "--only", "mine"]) == 0
    assert OnnxModel.load(tmp_path / "volume", "mine").metadata.labels == SPECIES


def test_a_regressor_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    split = iris_split()
    regressor = LinearRegression().fit(split.x_train, split.y_train)
    line = refusal(capsys, str(saved(tmp_path, regressor)), "--name", "r", "--out", str(tmp_path))
    assert "holds a LinearRegression, not a classifier" in line
    path = onnx_file(tmp_path, regressor, 4)
    line = refusal(capsys, str(path), "--name", "r", "--out", str(tmp_path))
    assert "a regressor or another kind of model" in line
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("n_features", "options", "message"),
    [
        (None, {"zipmap": False}, "input 'x' is float32[?, ?]; the services send float32 rows"),
        (4, None, "probabilities as a list of maps (ZipMap)"),
    ],
)
def test_graphs_the_services_cannot_use_are_refused(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    n_features: int | None,
    options: dict | None,
    message: str,
) -> None:
    path = onnx_file(tmp_path, iris_classifier(), n_features, options=options)
    assert message in refusal(capsys, str(path), "--name", "d", "--out", str(tmp_path))


def test_what_skl2onnx_cannot_convert_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    split = iris_split()
    estimator = HandMadeClassifier().fit(split.x_train, split.y_train)
    line = refusal(capsys, str(saved(tmp_path, estimator)), "--name", "h", "--out", str(tmp_path))
    assert line.startswith("models.add: skl2onnx cannot convert")
    assert "HandMadeClassifier" in line


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (b"not a model", "ok", "not an ONNX model"),
        (None, "../escape", "letters, digits"),
    ],
)
def test_bad_files_and_names_are_refused(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: bytes | None,
    name: str,
    message: str,
) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(content or b"")
    assert message in refusal(capsys, str(path), "--name", name, "--out", str(tmp_path / "repo"))
    assert not (tmp_path / "repo").exists()
