"""A model's metadata without its runtime, for services that check input but run no model.

An async or batch api validates requests against the model's input contract
(number and names of features) while the workers run the model; such an api
reads ``metadata.json`` from the same repository and never opens the ONNX file.
"""

import logging
from pathlib import Path

from shared.model import METADATA_FILE, ModelError, ModelMetadata, resolve_version_dir

log = logging.getLogger("shared.model_metadata")


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
