"""The models the playground serves: how each is trained, from bundled data only.

Add a model by writing a function that returns a :class:`~models.trained.TrainedModel`
and naming it in :data:`TRAINING`. Training must be deterministic (fixed seeds), so
the same code always exports the same ONNX bytes and sha256.
"""

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

from models.trained import TrainedModel


@dataclass(frozen=True)
class ModelSpec:
    """A model's name, version and training function."""

    name: str
    version: str
    train: Callable[[], TrainedModel]


# Every model of the playground: key -> (version, module, training function), in one table
# that compose/starter.py reads without importing it. The key is the model's name for its
# first version and ``name:version`` for a later one, as ``models.export --only`` takes them:
# a pattern exports the versions it serves (sync and web-single: both of iris, for a rolling
# update). A starter carries only the modules of its pattern's models, so SPECS holds the
# models whose module is present (tests/models checks that the playground has them all).
TRAINING: dict[str, tuple[str, str, str]] = {
    "iris": ("1", "models.iris", "train_iris"),
    "iris:2": ("2", "models.iris", "train_iris_v2"),
    "iris-gate": ("1", "models.serial", "train_iris_gate"),
    "iris-specialist": ("1", "models.serial", "train_iris_specialist"),
    "iris-forest": ("1", "models.ensemble", "train_iris_forest"),
    "iris-bayes": ("1", "models.ensemble", "train_iris_bayes"),
    "iris-boosted": ("1", "models.boosted", "train_iris_boosted"),
    "digits": ("1", "models.digits", "train_digits"),
}


def model_name(key: str) -> str:
    """The model name of a :data:`TRAINING` key (``iris:2`` -> ``iris``)."""
    return key.partition(":")[0]


SPECS: dict[str, ModelSpec] = {
    key: ModelSpec(model_name(key), version, getattr(importlib.import_module(module), function))
    for key, (version, module, function) in TRAINING.items()
    if importlib.util.find_spec(module) is not None
}
