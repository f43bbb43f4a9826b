"""Served models: what every api and predictor serves a request with, and the ONNX runtime.

:class:`ServedModel` is the one face a service sees of a model, wherever it runs:
its metadata (name, version, labels, tensors), the metadata of the version that
answers now (``GET /model``), a readiness check, and ``infer`` (rows in, named
outputs out); an api whose workers run the model has the describing half,
:class:`DescribedModel`. :class:`OnnxModel` runs in this process (web-single, data-cache,
the predictors, the workers); :class:`shared.v2.peers.ModelPeer` runs in a
predictor this service calls; :class:`shared.model_metadata.InputContract`
describes the model an api's workers run.

The model repository is laid out like Triton's and KServe's::

    <model_dir>/<name>/<version>/model.onnx
    <model_dir>/<name>/<version>/metadata.json

:meth:`OnnxModel.load` refuses a model whose file does not match its metadata
(sha256, input and output names, dtypes, shapes, number of labels), so a
service never starts serving the wrong thing.

onnxruntime is imported only to open a model: a service that only reads
metadata (an api, or the prep service of prep-pred, whose image has no
onnxruntime) imports this module without it.
"""

import hashlib
import logging
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, Field

from shared.metrics import record_model, stage
from shared.settings import ModelSettings
from shared.turn_batch import TurnBatcher

if TYPE_CHECKING:
    import onnxruntime as ort

log = logging.getLogger("shared.model")

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


class DescribedModel:
    """What a service says of the model it serves: name, version, labels, metadata, ready.

    Subclasses set :attr:`metadata` (the model's contract, read at start); the defaults
    hold for a model whose version never changes while the service runs. An api whose
    workers run the model has just this (:class:`shared.model_metadata.InputContract`).
    """

    metadata: ModelMetadata

    @property
    def name(self) -> str:
        """The model's name."""
        return self.metadata.name

    @property
    def version(self) -> str:
        """The model's version, as read at start."""
        return self.metadata.version

    @property
    def labels(self) -> list[str]:
        """Class names, by index."""
        return self.metadata.labels

    async def served_metadata(self) -> ModelMetadata:
        """The metadata of the version that answers now (what ``GET /model`` shows)."""
        return self.metadata

    async def check_ready(self) -> str | None:
        """Readiness: None when the model can answer, else why not."""
        return None


class ServedModel(DescribedModel, ABC):
    """A model a service runs requests through, wherever it runs: :meth:`infer`."""

    @abstractmethod
    async def infer(
        self, rows: np.ndarray, outputs: list[str], timeout_s: float | None = None
    ) -> dict[str, np.ndarray]:
        """The named ``outputs`` of the model for float32 ``rows``."""


class OnnxModel(ServedModel):
    """A checked ONNX model with its metadata, run in this process.

    :meth:`infer` runs in the event loop, and the requests of one loop turn that ask for
    the same output share one onnxruntime run (:class:`shared.turn_batch.TurnBatcher`);
    :meth:`run` and :meth:`predict_proba` are the plain synchronous runs.
    """

    def __init__(self, path: Path, metadata: ModelMetadata, session: "ort.InferenceSession"):
        self.path = path
        self.metadata = metadata
        self.session = session
        self.input_name = metadata.input.name
        self.n_features = metadata.input.shape[-1]
        self._turn_batchers: dict[str, TurnBatcher] = {}

    @classmethod
    def load(
        cls,
        model_dir: Path,
        name: str,
        version: str | None = None,
        intra_op_threads: int = 1,
    ) -> "OnnxModel":
        """Find, verify and open a model; :class:`ModelError` says what is wrong."""
        metadata = load_metadata(model_dir, name, version)
        folder = Path(model_dir) / name / metadata.version
        onnx_path = folder / MODEL_FILE
        if not onnx_path.is_file():
            raise ModelError(f"{onnx_path} is missing")
        actual = sha256_of(onnx_path)
        if actual != metadata.sha256:
            raise ModelError(
                f"{onnx_path} has sha256 {actual}, metadata says {metadata.sha256}: "
                "the file was changed or belongs to another export"
            )
        import onnxruntime as ort  # noqa: PLC0415 - only services that run models have it

        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        session = ort.InferenceSession(
            os.fspath(onnx_path), options, providers=["CPUExecutionProvider"]
        )
        check_model_matches(metadata, session)
        return cls(onnx_path, metadata, session)

    def run(self, x: np.ndarray, outputs: list[str] | None = None) -> list[np.ndarray]:
        """Run the model on ``x`` and return the named outputs (all when None)."""
        return self.session.run(outputs, {self.input_name: x})

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (rows, classes), for float32 rows ``x``."""
        return self.session.run(["probabilities"], {self.input_name: x})[0]

    async def infer(
        self, rows: np.ndarray, outputs: list[str], timeout_s: float | None = None
    ) -> dict[str, np.ndarray]:
        """The named ``outputs`` for ``rows``; one output: shared with the turn's other
        requests. ``timeout_s`` is unused: an in-process run is not interrupted."""
        if len(outputs) != 1:
            with stage("inference"):
                return dict(zip(outputs, self.run(rows, outputs), strict=True))
        output = outputs[0]
        batcher = self._turn_batchers.get(output)
        if batcher is None:
            batcher = self._turn_batchers[output] = TurnBatcher(
                lambda x: self.session.run([output], {self.input_name: x})[0]
            )
        return {output: await batcher(rows)}


def load_model(
    model_dir: Path, name: str, version: str | None = None, intra_op_threads: int = 1
) -> OnnxModel:
    """:meth:`OnnxModel.load`, logging what was loaded, or why the service refuses to start."""
    try:
        model = OnnxModel.load(model_dir, name, version, intra_op_threads)
    except ModelError as exc:
        log.critical("refusing to start: %s", exc)
        raise
    metadata = model.metadata
    log.info(
        "serving model %s version %s",
        metadata.name,
        metadata.version,
        extra={"sha256": metadata.sha256, "metrics": metadata.metrics},
    )
    return model


def load_served_model(settings: ModelSettings) -> OnnxModel:
    """Load and check the model ``settings`` name (a bad one stops the start) and publish
    its version (``mlsp_model_info``)."""
    model = load_model(
        settings.model_dir, settings.model_name, settings.model_version, settings.intra_op_threads
    )
    record_model(model.metadata.name, model.metadata.version, model.metadata.sha256)
    return model
