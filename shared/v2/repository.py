"""The models a predictor serves, and the checks of an inference request against them."""

from pathlib import Path
from typing import Any

import numpy as np

from shared.model.metadata import ModelError, TensorSpec, model_versions, version_key
from shared.serving.model import OnnxModel, load_model
from shared.v2.tensors import METADATA_DATATYPES, TensorError, datatype_of

PLATFORM = "onnx_onnxv1"


class ModelNotFound(LookupError):
    """No such model (or version) is served here."""


def v2_tensor(spec: TensorSpec) -> dict[str, Any]:
    """A metadata tensor in V2 form: datatype name, -1 for variable dimensions."""
    return {
        "name": spec.name,
        "datatype": METADATA_DATATYPES.get(spec.dtype, spec.dtype.upper()),
        "shape": [-1 if d is None else d for d in spec.shape],
    }


class ModelRepository:
    """The checked :class:`OnnxModel` of each version served, and each model's default version.

    A request that names no version gets the default: the version the predictor's settings
    name (``MODEL_VERSION``), else the highest.
    """

    def __init__(
        self, versions: dict[str, dict[str, OnnxModel]], default_version: str | None = None
    ) -> None:
        self.versions = versions
        self.models: dict[str, OnnxModel] = {}
        for name, served in versions.items():
            version = default_version or max(served, key=version_key)
            if version not in served:
                raise ModelError(
                    f"model {name!r} has no version {version!r} to serve by default; "
                    f"it has {', '.join(sorted(served, key=version_key))}"
                )
            self.models[name] = served[version]

    @classmethod
    def load(
        cls,
        model_dir: Path,
        names: list[str],
        intra_op_threads: int = 1,
        default_version: str | None = None,
    ) -> "ModelRepository":
        """Load ``names`` (``name``: every version of it; ``name:version``: that one); every
        model in ``model_dir`` when empty. ``default_version``: what a request without a
        version gets (None: each model's highest)."""
        if not names:
            names = sorted(p.name for p in Path(model_dir).iterdir() if p.is_dir())
            if not names:
                raise ModelError(f"no models under {model_dir}")
        versions: dict[str, dict[str, OnnxModel]] = {}
        for entry in names:
            name, _, version = entry.partition(":")
            wanted = [version] if version else model_versions(Path(model_dir), name)
            for each in wanted:
                model = load_model(model_dir, name, each, intra_op_threads)
                versions.setdefault(name, {})[model.metadata.version] = model
            check_same_contract(list(versions[name].values()))
        return cls(versions, default_version)

    def get(self, name: str, version: str = "") -> OnnxModel:
        """The model called ``name`` at ``version``; its default version when empty."""
        model = self.models.get(name)
        if model is None:
            raise ModelNotFound(f"unknown model '{name}'; served: {', '.join(sorted(self.models))}")
        if not version:
            return model
        served = self.versions[name]
        if version not in served:
            raise ModelNotFound(
                f"model '{name}' has no version '{version}'; served: "
                f"{', '.join(sorted(served, key=version_key))}"
            )
        return served[version]

    def metadata(self, model: OnnxModel) -> dict[str, Any]:
        """The V2 model metadata of ``model``."""
        return {
            "name": model.metadata.name,
            "versions": sorted(self.versions[model.metadata.name], key=version_key),
            "platform": PLATFORM,
            "inputs": [v2_tensor(t) for t in model.metadata.inputs],
            "outputs": [v2_tensor(t) for t in model.metadata.outputs],
        }


def check_same_contract(versions: list[OnnxModel]) -> None:
    """Raise :class:`ModelError` unless the versions of one model take the same inputs and
    answer the same outputs and labels: a caller must not care which version answers."""
    first = versions[0].metadata
    for model in versions[1:]:
        other = model.metadata
        for what in ("inputs", "outputs", "labels", "task"):
            if getattr(other, what) != getattr(first, what):
                raise ModelError(
                    f"model {first.name!r}: version {other.version} has other {what} than "
                    f"version {first.version}; versions of one model must be interchangeable"
                )


def infer(
    model: OnnxModel, inputs: dict[str, np.ndarray], outputs: list[str]
) -> dict[str, np.ndarray]:
    """Run ``model`` after checking the inputs' names, datatypes and shapes against it."""
    declared = {spec.name: spec for spec in model.metadata.inputs}
    if set(inputs) != set(declared):
        raise TensorError(
            f"model '{model.metadata.name}' takes inputs {sorted(declared)}, got {sorted(inputs)}"
        )
    for name, array in inputs.items():
        spec = declared[name]
        want = METADATA_DATATYPES.get(spec.dtype, spec.dtype)
        if datatype_of(array) != want:
            raise TensorError(
                f"tensor '{name}': datatype {datatype_of(array)}; the model takes {want}"
            )
        if len(array.shape) != len(spec.shape) or any(
            d is not None and d != got for d, got in zip(spec.shape, array.shape, strict=True)
        ):
            shown = [-1 if d is None else d for d in spec.shape]
            raise TensorError(
                f"tensor '{name}': shape {list(array.shape)}; the model takes {shown}"
            )
    served = [spec.name for spec in model.metadata.outputs]
    unknown = sorted(set(outputs) - set(served))
    if unknown:
        raise TensorError(
            f"model '{model.metadata.name}' has no outputs {unknown}; it has {served}"
        )
    wanted = outputs or served
    results = model.session.run(wanted, inputs)
    return dict(zip(wanted, results, strict=True))
