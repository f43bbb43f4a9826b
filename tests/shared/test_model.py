"""The model runtime finds, checks and runs models, and refuses mismatches."""

import shutil
from pathlib import Path

import numpy as np
import orjson
import pytest

from shared.model.metadata import METADATA_FILE, MODEL_FILE, ModelError, resolve_version_dir
from shared.serving.model import OnnxModel


@pytest.fixture
def repo_copy(model_repo: Path, tmp_path: Path) -> Path:
    """A private copy of the exported repository, safe to damage."""
    shutil.copytree(model_repo, tmp_path / "models")
    return tmp_path / "models"


def edit_metadata(repo: Path, **changes: object) -> None:
    path = repo / "iris" / "1" / METADATA_FILE
    metadata = orjson.loads(path.read_bytes())
    metadata.update(changes)
    path.write_bytes(orjson.dumps(metadata))


def test_loads_and_predicts_the_exported_examples(model_repo: Path) -> None:
    model = OnnxModel.load(model_repo, "iris")
    examples = model.metadata.examples
    rows = np.array([e["input"] for e in examples], dtype=np.float32)
    probabilities = model.predict_proba(rows)
    assert probabilities.shape == (len(examples), 3)
    assert [model.metadata.labels[k] for k in probabilities.argmax(axis=1)] == [
        e["label"] for e in examples
    ]
    np.testing.assert_allclose(probabilities, [e["probabilities"] for e in examples], atol=1e-4)


def test_highest_version_is_served_when_none_is_asked(repo_copy: Path) -> None:
    shutil.copytree(repo_copy / "iris" / "1", repo_copy / "iris" / "10")
    path = repo_copy / "iris" / "10" / METADATA_FILE
    path.write_bytes(path.read_bytes().replace(b'"version":"1"', b'"version":"10"'))
    path.write_bytes(orjson.dumps({**orjson.loads(path.read_bytes()), "version": "10"}))
    assert resolve_version_dir(repo_copy, "iris").name == "10"
    assert OnnxModel.load(repo_copy, "iris").metadata.version == "10"
    assert OnnxModel.load(repo_copy, "iris", "1").metadata.version == "1"


def test_unknown_model_names_what_exists(model_repo: Path) -> None:
    with pytest.raises(ModelError, match=r"no model 'tulip'.*iris"):
        OnnxModel.load(model_repo, "tulip")


def test_unknown_version_is_refused(model_repo: Path) -> None:
    with pytest.raises(ModelError, match="no version '7'"):
        OnnxModel.load(model_repo, "iris", "7")


def test_changed_model_file_is_refused(repo_copy: Path) -> None:
    onnx_path = repo_copy / "iris" / "1" / MODEL_FILE
    onnx_path.write_bytes(onnx_path.read_bytes() + b"\0")
    with pytest.raises(ModelError, match="sha256"):
        OnnxModel.load(repo_copy, "iris")


def test_metadata_with_wrong_input_shape_is_refused(repo_copy: Path) -> None:
    edit_metadata(repo_copy, inputs=[{"name": "input", "dtype": "float32", "shape": [None, 5]}])
    with pytest.raises(ModelError, match=r"input 'input'.*float32\[None, 5\]"):
        OnnxModel.load(repo_copy, "iris")


def test_metadata_with_wrong_input_name_is_refused(repo_copy: Path) -> None:
    edit_metadata(repo_copy, inputs=[{"name": "x", "dtype": "float32", "shape": [None, 4]}])
    with pytest.raises(ModelError, match="metadata names input 'x'"):
        OnnxModel.load(repo_copy, "iris")


def test_metadata_with_wrong_label_count_is_refused(repo_copy: Path) -> None:
    edit_metadata(repo_copy, labels=["setosa", "versicolor"])
    with pytest.raises(ModelError, match="2 labels for 3 classes"):
        OnnxModel.load(repo_copy, "iris")


def test_metadata_of_another_model_is_refused(repo_copy: Path) -> None:
    edit_metadata(repo_copy, name="rose")
    with pytest.raises(ModelError, match="holds 'rose'"):
        OnnxModel.load(repo_copy, "iris")


def test_broken_metadata_is_refused(repo_copy: Path) -> None:
    (repo_copy / "iris" / "1" / METADATA_FILE).write_text("{not json")
    with pytest.raises(ModelError, match="not valid metadata"):
        OnnxModel.load(repo_copy, "iris")
