"""A model in the repository: its metadata (the contract of ``metadata.json``), its versions,
and the checks that the ONNX file is what the metadata says.

The repository is laid out like Triton's and KServe's::

    <model_dir>/<name>/<version>/model.onnx
    <model_dir>/<name>/<version>/metadata.json

The bottom layer of ``shared``: it imports nothing else of it. onnxruntime is only named for
type checks, so a service that only reads metadata (an api, or prep-pred's prep, whose image has
no onnxruntime) imports this module without it.
"""

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    import onnxruntime as ort

MODEL_FILE = "model.onnx"
METADATA_FILE = "metadata.json"

# ONNX tensor types as onnxruntime names them -> numpy dtype names used in metadata.
_ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(string)": "string",
    "tensor(bool)": "bool",
}


class TensorSpec(BaseModel):
    """A named tensor: numpy dtype name and shape (``None`` for a free dimension)."""

    name: str
    dtype: str
    shape: list[int | None]


class ModelMetadata(BaseModel):
    """What ``metadata.json`` says about a model; written by the export step."""

    name: str
    version: str
    description: str = ""
    task: str = "classification"
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    labels: list[str] = Field(default_factory=list, description="Class names, by index.")
    feature_names: list[str] = Field(default_factory=list)
    metrics: dict[str, float] = Field(default_factory=dict, description="On the held-out set.")
    training: dict[str, Any] = Field(default_factory=dict)
    examples: list[dict[str, Any]] = Field(
        default_factory=list, description="Held-out inputs with the model's answers."
    )
    sha256: str

    @property
    def input(self) -> TensorSpec:
        """The model's single input."""
        return self.inputs[0]

    def output(self, name: str) -> TensorSpec:
        """The output called ``name``."""
        for spec in self.outputs:
            if spec.name == name:
                return spec
        raise KeyError(name)


#: What a model of each task must answer (output names); see :func:`check_task_outputs`.
TASK_OUTPUTS: dict[str, tuple[str, ...]] = {
    "classification": ("label", "probabilities"),
    "anomaly": ("label", "scores"),
}


class ModelError(Exception):
    """The model is missing, or its file and metadata disagree."""


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def version_key(version: str) -> tuple[int, int | str]:
    """Sort key of version names: numbers by value, before any other name."""
    return (0, int(version)) if version.isdigit() else (1, version)


def model_versions(model_dir: Path, name: str) -> list[str]:
    """The versions of ``name`` in the repository (folders with metadata), lowest first."""
    folder = resolve_version_dir(model_dir, name).parent
    found = [p.name for p in folder.iterdir() if (p / METADATA_FILE).is_file()]
    return sorted(found, key=version_key)


def resolve_version_dir(model_dir: Path, name: str, version: str | None = None) -> Path:
    """The folder of ``name`` at ``version``, or at its highest version when None."""
    model_root = model_dir / name
    if not model_root.is_dir():
        known = (
            sorted(p.name for p in model_dir.iterdir() if p.is_dir()) if model_dir.is_dir() else []
        )
        raise ModelError(f"no model {name!r} under {model_dir} (found: {known or 'nothing'})")
    if version is None:
        versions = [p.name for p in model_root.iterdir() if (p / METADATA_FILE).is_file()]
        if not versions:
            raise ModelError(f"model {name!r} has no version folder with {METADATA_FILE}")
        version = max(versions, key=version_key)
    path = model_root / version
    if not (path / METADATA_FILE).is_file():
        raise ModelError(f"model {name!r} has no version {version!r} under {model_root}")
    return path


def load_metadata(model_dir: Path, name: str, version: str | None = None) -> ModelMetadata:
    """The checked ``metadata.json`` of ``name`` at ``version`` (the highest when None).

    Enough for a service that calls a predictor rather than running the model:
    labels, feature names, tensor names and the version to ask for.
    """
    folder = resolve_version_dir(Path(model_dir), name, version)
    try:
        metadata = ModelMetadata.model_validate_json((folder / METADATA_FILE).read_bytes())
    except ValueError as exc:
        raise ModelError(f"{folder / METADATA_FILE} is not valid metadata: {exc}") from exc
    if metadata.name != name or metadata.version != folder.name:
        raise ModelError(
            f"{folder} holds {metadata.name!r} version {metadata.version!r} by its metadata"
        )
    return metadata


def ort_specs(args: list[Any]) -> list[TensorSpec]:
    """The tensors of an onnxruntime session's inputs or outputs (``None``: a free dimension)."""
    return [
        TensorSpec(
            name=a.name,
            dtype=_ORT_DTYPES.get(a.type, a.type),
            shape=[d if isinstance(d, int) else None for d in a.shape],
        )
        for a in args
    ]


def check_model_matches(metadata: ModelMetadata, session: "ort.InferenceSession") -> None:
    """Raise :class:`ModelError` unless the session's tensors are the metadata's."""
    for kind, declared, actual in (
        ("input", metadata.inputs, ort_specs(session.get_inputs())),
        ("output", metadata.outputs, ort_specs(session.get_outputs())),
    ):
        actual_by_name = {spec.name: spec for spec in actual}
        for spec in declared:
            found = actual_by_name.get(spec.name)
            if found is None:
                raise ModelError(
                    f"metadata names {kind} {spec.name!r}; the model has {sorted(actual_by_name)}"
                )
            if found.dtype != spec.dtype or found.shape != spec.shape:
                raise ModelError(
                    f"{kind} {spec.name!r}: metadata says {spec.dtype}{spec.shape}, "
                    f"the model has {found.dtype}{found.shape}"
                )
    check_task_outputs(metadata)
    if metadata.feature_names and metadata.input.shape[-1] != len(metadata.feature_names):
        raise ModelError(
            f"{len(metadata.feature_names)} feature names for input {metadata.input.shape}"
        )


def check_task_outputs(metadata: ModelMetadata) -> None:
    """Raise :class:`ModelError` unless the metadata declares what its task answers.

    * ``classification``: ``label`` and ``probabilities`` (rows, classes), a label per class.
    * ``anomaly``: ``label`` (1 inlier, -1 outlier) and ``scores`` (rows, 1), below 0 for
      outliers; ``labels``, when given, name the values -1 and 1 in that order.
    """
    required = TASK_OUTPUTS.get(metadata.task)
    if required is None:
        raise ModelError(f"unknown task {metadata.task!r}; known: {', '.join(TASK_OUTPUTS)}")
    declared = [spec.name for spec in metadata.outputs]
    missing = [name for name in required if name not in declared]
    if missing:
        raise ModelError(
            f"a {metadata.task} model answers {list(required)}; the metadata declares {declared}"
        )
    if metadata.task == "classification":
        n_classes = metadata.output("probabilities").shape[-1]
        if n_classes is not None and n_classes != len(metadata.labels):
            raise ModelError(f"{len(metadata.labels)} labels for {n_classes} classes")
    else:
        if metadata.output("scores").shape[-1] != 1:
            raise ModelError(f"scores must be (rows, 1), not {metadata.output('scores').shape}")
        if metadata.labels and len(metadata.labels) != 2:
            raise ModelError(f"{len(metadata.labels)} labels for the anomaly values -1 and 1")
