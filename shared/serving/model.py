"""Served models: what every api and predictor serves a request with.

:class:`ServedModel` is the one face a service sees of a model, wherever it runs:
its metadata (name, version, labels, tensors), the metadata of the version that
answers now (``GET /model``), a readiness check, and ``infer`` (rows in, named
outputs out); an api whose workers run the model has the describing half,
:class:`DescribedModel`. :class:`OnnxModel` runs in this process (web-single, data-cache,
the predictors, the workers); :class:`shared.v2.peers.ModelPeer` runs in a
predictor this service calls; :class:`shared.jobs.input_contract.InputContract`
describes the model an api's workers run.

:meth:`OnnxModel.load` refuses a model whose file does not match its metadata
(sha256, input and output names, dtypes, shapes, number of labels), so a
service never starts serving the wrong thing. onnxruntime is imported only to open a model.
"""

import logging
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from shared.kit.metrics import record_model, stage
from shared.kit.settings import ModelSettings
from shared.model.metadata import (
    MODEL_FILE,
    ModelError,
    ModelMetadata,
    check_model_matches,
    load_metadata,
    sha256_of,
)
from shared.serving.turn_batch import TurnBatcher

if TYPE_CHECKING:
    import onnxruntime as ort

log = logging.getLogger("shared.serving.model")


class DescribedModel:
    """What a service says of the model it serves: name, version, labels, metadata, ready.

    Subclasses set :attr:`metadata` (the model's contract, read at start); the defaults
    hold for a model whose version never changes while the service runs. An api whose
    workers run the model has just this (:class:`shared.jobs.input_contract.InputContract`).
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
    the same output share one onnxruntime run (:class:`shared.serving.turn_batch.TurnBatcher`);
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
