"""The digits model and the sample images rendered from its held-out data."""

from pathlib import Path

import numpy as np

from models.digit_samples import SAMPLES_DIR, SAMPLES_JPEG, SAMPLES_PNG, render_samples, sample_rows
from models.digits import digits_split
from models.export import export
from models.specs import SPECS
from shared.mechanisms.digit_images import image_to_digits
from shared.model.metadata import MODEL_FILE, sha256_of
from shared.serving.model import OnnxModel

REPO = Path(__file__).resolve().parents[2]


def test_export_is_deterministic_and_accurate(model_repo: Path, tmp_path: Path) -> None:
    metadata = export(SPECS["digits"], tmp_path)
    assert metadata.sha256 == sha256_of(model_repo / "digits" / "1" / MODEL_FILE)
    assert metadata.metrics["accuracy"] > 0.95
    assert metadata.labels == [str(d) for d in range(10)]
    assert metadata.input.shape == [None, 64]
    assert metadata.feature_names[:2] == ["pixel_0_0", "pixel_0_1"]
    assert metadata.training["dataset"] == "sklearn.datasets.load_digits"


def test_the_samples_are_held_out_images_that_come_back_as_their_values(
    model_repo: Path,
) -> None:
    split = digits_split()
    expected = {(d, i): v for d, i, v in sample_rows(split, SAMPLES_PNG + SAMPLES_JPEG)}
    files = sorted((REPO / SAMPLES_DIR).iterdir())
    assert len(files) == len(expected)
    model = OnnxModel.load(model_repo, "digits")
    right = 0
    for path in files:
        _, digit, i = path.stem.split("-")
        values = image_to_digits(path.read_bytes())
        np.testing.assert_array_equal(values[0], expected[(int(digit), int(i))], err_msg=path.name)
        right += int(model.run(values, ["label"])[0][0]) == int(digit)
    assert right / len(files) >= 0.9
    # never seen in training
    train = {row.tobytes() for row in split.x_train}
    assert not any(v.tobytes() in train for v in expected.values())


def test_the_committed_samples_are_what_the_renderer_makes(tmp_path: Path) -> None:
    rendered = render_samples(tmp_path)
    committed = sorted((REPO / SAMPLES_DIR).iterdir())
    assert [p.name for p in rendered] == [p.name for p in committed]
    for new, old in zip(rendered, committed, strict=True):
        np.testing.assert_array_equal(
            image_to_digits(new.read_bytes()), image_to_digits(old.read_bytes())
        )
