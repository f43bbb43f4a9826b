"""The models a predictor serves, and the checks of an inference request against them."""

from pathlib import Path
from typing import Any

import numpy as np

from shared.model import ModelError, OnnxModel, TensorSpec, load_model
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
    """One checked :class:`OnnxModel` per name (its highest, or pinned, version)."""

    def __init__(self, models: dict[str, OnnxModel]) -> None:
        self.models = models

    @classmethod
    def load(
        cls, model_dir: Path, names: list[str], intra_op_threads: int = 1
    ) -> "ModelRepository":
        """Load ``names`` (``name`` or ``name:version``); all models in ``model_dir`` when empty."""
        if not names:
            names = sorted(p.name for p in Path(model_dir).iterdir() if p.is_dir())
            if not names:
                raise ModelError(f"no models under {model_dir}")
        models = {}
        for entry in names:
            name, _, version = entry.partition(":")
            models[name] = load_model(model_dir, name, version or None, intra_op_threads)
        return cls(models)

    def get(self, name: str, version: str = "") -> OnnxModel:
        """The model called ``name``; ``version`` must be the served one when given."""
        model = self.models.get(name)
        if model is None:
            raise ModelNotFound(f"unknown model '{name}'; served: {', '.join(sorted(self.models))}")
        if version and version != model.metadata.version:
            raise ModelNotFound(
                f"model '{name}' has no version '{version}'; served: {model.metadata.version}"
            )
        return model

    @staticmethod
    def metadata(model: OnnxModel) -> dict[str, Any]:
        """The V2 model metadata of ``model``."""
        return {
            "name": model.metadata.name,
            "versions": [model.metadata.version],
            "platform": PLATFORM,
            "inputs": [v2_tensor(t) for t in model.metadata.inputs],
            "outputs": [v2_tensor(t) for t in model.metadata.outputs],
        }


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
