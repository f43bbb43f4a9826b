"""The export step trains a model only when the volume does not hold what it would write."""

import logging
from pathlib import Path

import orjson
import pytest

from models import export as export_module
from models.export import fingerprint, is_exported, main, training_sources
from models.specs import SPECS, TRAINING
from shared.model.metadata import METADATA_FILE, MODEL_FILE

IRIS = Path("iris") / "1"


def test_the_playground_has_every_model_of_the_table() -> None:
    assert set(SPECS) == set(TRAINING)


def test_a_model_exported_already_is_not_trained_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert main(["--out", str(tmp_path), "--only", "iris"]) == 0
    written = (tmp_path / IRIS / MODEL_FILE).stat().st_mtime_ns
    caplog.set_level(logging.INFO, logger="models.export")
    assert main(["--out", str(tmp_path), "--only", "iris"]) == 0
    assert "iris v1 is up to date" in caplog.text
    assert (tmp_path / IRIS / MODEL_FILE).stat().st_mtime_ns == written


def test_each_version_is_skipped_on_its_own(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert main(["--out", str(tmp_path), "--only", "iris"]) == 0
    caplog.set_level(logging.INFO, logger="models.export")
    assert main(["--out", str(tmp_path), "--only", "iris", "iris:2"]) == 0
    assert "iris v1 is up to date" in caplog.text
    assert "exported iris v2" in caplog.text
    caplog.clear()
    assert main(["--out", str(tmp_path), "--only", "iris", "iris:2"]) == 0
    assert "exported" not in caplog.text


def test_a_damaged_model_file_is_written_again(tmp_path: Path) -> None:
    main(["--out", str(tmp_path), "--only", "iris"])
    good = (tmp_path / IRIS / MODEL_FILE).read_bytes()
    (tmp_path / IRIS / MODEL_FILE).write_bytes(good[:-10])
    assert not is_exported(SPECS["iris"], tmp_path)
    main(["--out", str(tmp_path), "--only", "iris"])
    assert (tmp_path / IRIS / MODEL_FILE).read_bytes() == good


def test_metadata_of_other_training_code_means_training_again(tmp_path: Path) -> None:
    main(["--out", str(tmp_path), "--only", "iris"])
    metadata_path = tmp_path / IRIS / METADATA_FILE
    metadata = orjson.loads(metadata_path.read_bytes())
    assert metadata["training"]["fingerprint"] == fingerprint(SPECS["iris"])
    metadata["training"]["fingerprint"] = "0" * 64
    metadata_path.write_bytes(orjson.dumps(metadata))
    assert not is_exported(SPECS["iris"], tmp_path)
    main(["--out", str(tmp_path), "--only", "iris"])
    assert is_exported(SPECS["iris"], tmp_path)


@pytest.mark.parametrize("content", [b"", b"{not json", b'{"training": []}'])
def test_unreadable_metadata_means_training_again(tmp_path: Path, content: bytes) -> None:
    folder = tmp_path / IRIS
    folder.mkdir(parents=True)
    (folder / MODEL_FILE).write_bytes(b"x")
    (folder / METADATA_FILE).write_bytes(content)
    assert not is_exported(SPECS["iris"], tmp_path)


def test_force_trains_anyway(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    main(["--out", str(tmp_path), "--only", "iris"])
    caplog.set_level(logging.INFO, logger="models.export")
    main(["--out", str(tmp_path), "--only", "iris", "--force"])
    assert "exported iris v1" in caplog.text
    assert "up to date" not in caplog.text


def test_the_fingerprint_follows_the_training_code_and_package_versions(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    gate = SPECS["iris-gate"]
    assert {p.name for p in training_sources(gate.train.__module__)} == {
        "serial.py",
        "iris_data.py",
        "trained.py",
    }
    assert fingerprint(gate) == fingerprint(gate)
    assert fingerprint(SPECS["iris"]) != fingerprint(SPECS["iris:2"])  # same code, another version
    assert fingerprint(gate) != fingerprint(SPECS["iris-specialist"])  # same code, another model
    before = fingerprint(gate)
    monkeypatch.setattr(export_module.importlib.metadata, "version", lambda name: "0.0")
    assert fingerprint(gate) != before

    code = tmp_path / "serial.py"
    monkeypatch.setattr(export_module, "training_sources", lambda module: {code})
    code.write_text("SEED = 0\n")
    before = fingerprint(gate)
    code.write_text("SEED = 1\n")
    assert fingerprint(gate) != before


def test_an_unknown_model_is_refused_with_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--only", "nope"])
    assert "invalid choice: 'nope'" in capsys.readouterr().err
