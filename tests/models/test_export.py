"""The export step is deterministic and writes metadata that matches the model."""

from pathlib import Path

import onnx
import orjson

from models.export import export, main
from models.specs import SPECS
from shared.model.metadata import METADATA_FILE, MODEL_FILE, sha256_of
from shared.serving.model import OnnxModel


def test_every_model_exports_and_loads(versioned_model_repo: Path) -> None:
    for spec in SPECS.values():
        model = OnnxModel.load(versioned_model_repo, spec.name, spec.version)
        assert model.metadata.version == spec.version
        assert model.metadata.metrics["accuracy"] > 0.9
        assert model.metadata.training["onnx_max_abs_diff"] < 1e-4
        assert len(model.metadata.examples) >= len(model.metadata.labels)


def test_export_is_deterministic(tmp_path: Path, model_repo: Path) -> None:
    metadata = export(SPECS["iris"], tmp_path)
    assert metadata.sha256 == sha256_of(model_repo / "iris" / "1" / MODEL_FILE)
    assert (tmp_path / "iris" / "1" / METADATA_FILE).read_bytes() == (
        model_repo / "iris" / "1" / METADATA_FILE
    ).read_bytes()


def test_metadata_describes_the_onnx_graph(model_repo: Path) -> None:
    folder = model_repo / "iris" / "1"
    metadata = orjson.loads((folder / METADATA_FILE).read_bytes())
    graph = onnx.load(folder / MODEL_FILE).graph
    assert [i.name for i in graph.input] == [t["name"] for t in metadata["inputs"]]
    assert [o.name for o in graph.output] == [t["name"] for t in metadata["outputs"]]
    assert metadata["labels"] == ["setosa", "versicolor", "virginica"]
    assert metadata["feature_names"][0] == "sepal_length"
    assert set(metadata["metrics"]) == {"accuracy", "f1_macro"}
    assert metadata["sha256"] == sha256_of(folder / MODEL_FILE)


def test_command_line_exports_the_named_models(tmp_path: Path) -> None:
    assert main(["--out", str(tmp_path), "--only", "iris"]) == 0
    assert (tmp_path / "iris" / "1" / MODEL_FILE).is_file()


def test_iris_has_a_second_version_trained_otherwise(
    tmp_path: Path, versioned_model_repo: Path
) -> None:
    assert main(["--out", str(tmp_path), "--only", "iris", "iris:2"]) == 0
    one, two = (OnnxModel.load(tmp_path, "iris", v).metadata for v in ("1", "2"))
    assert (one.inputs, one.outputs, one.labels) == (two.inputs, two.outputs, two.labels)
    assert one.training["algorithm"] != two.training["algorithm"]
    assert one.sha256 != two.sha256
    assert two.sha256 == sha256_of(versioned_model_repo / "iris" / "2" / MODEL_FILE)
    first, second = (ex["probabilities"] for ex in (one.examples[0], two.examples[0]))
    assert first != second
