"""A model's input contract, for services that check requests but run no model.

An async or batch api validates rows against the model's metadata (number
and names of features) and refuses bad input at once, while the workers run
the model; such an api reads ``metadata.json`` from the same repository and
never opens the ONNX file. :class:`InputContract` does that for one api:
read at start, readiness check, decoding, and what ``GET /model`` shows
(:func:`shared.kit.app.add_model_route`). It is a :class:`shared.serving.model.DescribedModel`
(name, version, labels, metadata, readiness) without ``infer``: the api never runs
the model.
"""

import logging
from pathlib import Path

import numpy as np

from shared.kit.metrics import record_model, stage
from shared.kit.schemas import decode_instances
from shared.kit.settings import ModelSettings
from shared.model.metadata import METADATA_FILE, ModelError, ModelMetadata, resolve_version_dir
from shared.serving.model import DescribedModel

log = logging.getLogger("shared.jobs.input_contract")


def read_metadata(model_dir: Path, name: str, version: str | None = None) -> ModelMetadata:
    """The metadata of model ``name`` (highest version when None); :class:`ModelError` if absent."""
    try:
        folder = resolve_version_dir(Path(model_dir), name, version)
        try:
            metadata = ModelMetadata.model_validate_json((folder / METADATA_FILE).read_bytes())
        except ValueError as exc:
            raise ModelError(f"{folder / METADATA_FILE} is not valid metadata: {exc}") from exc
    except ModelError as exc:
        log.critical("refusing to start: %s", exc)
        raise
    log.info("checking input against model %s version %s", metadata.name, metadata.version)
    return metadata


class InputContract(DescribedModel):
    """The input contract of the model an api's workers serve."""

    def __init__(self, settings: ModelSettings) -> None:
        self.settings = settings
        self._metadata: ModelMetadata | None = None

    def load(self) -> ModelMetadata:
        """Read the metadata (at start: a missing model stops the service) and publish it."""
        self._metadata = read_metadata(
            self.settings.model_dir, self.settings.model_name, self.settings.model_version
        )
        record_model(self._metadata.name, self._metadata.version, self._metadata.sha256)
        return self._metadata

    @property
    def metadata(self) -> ModelMetadata:
        """The metadata read by :meth:`load`."""
        assert self._metadata is not None, "the lifespan loads the contract before any request"
        return self._metadata

    async def check_ready(self) -> str | None:
        """Readiness: the metadata is read (the input contract is known)."""
        return None if self._metadata is not None else "model metadata not loaded"

    def decode(self, body: bytes) -> np.ndarray:
        """The body's ``instances`` as float32 rows, or :class:`shared.kit.errors.InvalidInput`."""
        metadata = self.metadata
        with stage("decode"):
            return decode_instances(
                body, metadata.input.shape[-1], metadata.feature_names, self.settings.max_instances
            )
