"""Export every model in :data:`models.specs.SPECS` to an ONNX model repository.

    python -m models.export --out models/build [--only iris iris:2] [--force]

writes ``<out>/<name>/<version>/model.onnx`` and ``metadata.json`` for each
model (``--only`` takes the keys of :data:`models.specs.TRAINING`: a name is the
model's first version, ``name:version`` a later one), and checks that onnxruntime
gives the same probabilities (classifiers) or outlier scores (task ``anomaly``)
as scikit-learn before it writes anything.

A model whose folder already holds what this code would write is not trained
again (``--force`` trains it anyway). Training is deterministic (fixed seeds),
so "what this code would write" is known without training: the metadata records
the :func:`fingerprint` of the training code and of the packages it ran on, and
the model file must still match the metadata's sha256.
"""

import argparse
import ast
import hashlib
import importlib.metadata
import importlib.util
import logging
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import orjson
import skl2onnx
import sklearn
from skl2onnx import convert_sklearn
from skl2onnx.common import tree_ensemble
from skl2onnx.common.data_types import FloatTensorType

from models.add import added_models
from models.specs import SPECS, ModelSpec
from models.trained import SEED, TrainedModel
from shared.model.metadata import METADATA_FILE, MODEL_FILE, ModelMetadata, TensorSpec, sha256_of

log = logging.getLogger("models.export")

INPUT_NAME = "input"
TARGET_OPSET = 17
# skl2onnx's IsolationForest needs the ML domain pinned to a version it supports.
ANOMALY_OPSET = {"": TARGET_OPSET, "ai.onnx.ml": 3}
MAX_ABS_DIFF = 1e-4  # onnxruntime vs scikit-learn probabilities, float32 arithmetic
N_EXAMPLES_PER_CLASS = 2
# The packages whose versions can change the exported bytes (numerics, conversion).
FINGERPRINTED_PACKAGES = ("numpy", "scipy", "scikit-learn", "skl2onnx", "onnx")


def training_sources(module: str) -> set[Path]:
    """The files of ``module`` and of the ``models.*`` modules it imports, transitively."""
    found: set[Path] = set()
    pending = [module]
    while pending:
        path = _module_file(pending.pop())
        if path is None or path in found:
            continue
        found.add(path)
        for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            pending += [name for name in names if name.startswith("models.")]
    return found


def _module_file(name: str) -> Path | None:
    """The source file of module ``name``; None for a name that is no module (``models.x.f``)."""
    try:
        spec = importlib.util.find_spec(name)
    except ModuleNotFoundError:  # the parent is a module, not a package
        return None
    return Path(spec.origin) if spec is not None and spec.origin is not None else None


def fingerprint(spec: ModelSpec) -> str:
    """What decides the exported bytes of ``spec``: its name and version, the source of its
    training code (with the ``models`` modules it uses) and of this export step, and the
    versions of Python and of the numeric and conversion packages."""
    digest = hashlib.sha256(f"{spec.name}/{spec.version}\n".encode())
    for path in sorted(training_sources(spec.train.__module__) | {Path(__file__)}):
        digest.update(f"{path.name}\n".encode() + path.read_bytes())
    versions = [f"python=={sys.version_info.major}.{sys.version_info.minor}"]
    versions += [f"{name}=={importlib.metadata.version(name)}" for name in FINGERPRINTED_PACKAGES]
    digest.update("\n".join(versions).encode())
    return digest.hexdigest()


def is_exported(spec: ModelSpec, out: Path) -> bool:
    """Whether ``out`` already holds what :func:`export` would write for ``spec``: metadata
    with the same fingerprint, and a model file that still has the metadata's sha256."""
    folder = out / spec.name / spec.version
    try:
        metadata = orjson.loads((folder / METADATA_FILE).read_bytes())
        recorded = metadata["training"]["fingerprint"], metadata["sha256"]
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError):
        return False
    model = folder / MODEL_FILE
    return model.is_file() and recorded == (fingerprint(spec), sha256_of(model))


def _int_missing_value_flags(add_node: Callable[..., None]) -> Callable[..., None]:
    """skl2onnx 1.20 gives the leaves of HistGradientBoosting trees a Python ``False`` as
    their missing-value flag, an integer attribute: protobuf 6 warned, protobuf 7 refuses
    it. This wraps its ``add_node`` to pass the flag as the int ONNX wants."""

    def with_int_flag(*args: object, nodes_missing_value_tracks_true: int = 0, **kwargs: object):
        return add_node(
            *args, nodes_missing_value_tracks_true=int(nodes_missing_value_tracks_true), **kwargs
        )

    with_int_flag.wraps_for_int_flags = add_node  # type: ignore[attr-defined]
    return with_int_flag


if not hasattr(tree_ensemble.add_node, "wraps_for_int_flags"):
    tree_ensemble.add_node = _int_missing_value_flags(tree_ensemble.add_node)


def to_onnx_bytes(trained: TrainedModel) -> bytes:
    """The fitted estimator as ONNX: float32 rows in; ``label`` and ``probabilities`` out.

    An anomaly model (task ``anomaly``) answers ``label`` and ``scores`` instead.
    """
    n_features = trained.x_test.shape[1]
    anomaly = trained.task == "anomaly"
    onnx_model = convert_sklearn(
        trained.estimator,
        initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
        options=None if anomaly else {"zipmap": False},
        target_opset=ANOMALY_OPSET if anomaly else TARGET_OPSET,
        name=type(trained.estimator).__name__,  # the default is random: keep bytes stable
    )
    return onnx_model.SerializeToString()


def _compared_output(trained: TrainedModel) -> tuple[str, np.ndarray]:
    """The output that must agree with scikit-learn, and scikit-learn's values of it."""
    if trained.task == "anomaly":
        return "scores", trained.estimator.decision_function(trained.x_test).reshape(-1, 1)
    return "probabilities", trained.estimator.predict_proba(trained.x_test)


def check_against_sklearn(onnx_bytes: bytes, trained: TrainedModel) -> float:
    """Largest difference of ONNX and scikit-learn probabilities (or scores) on the test rows."""
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    name, expected = _compared_output(trained)
    actual = session.run([name], {INPUT_NAME: trained.x_test})[0]
    diff = float(np.abs(actual - expected).max())
    if diff > MAX_ABS_DIFF:
        raise RuntimeError(f"ONNX and scikit-learn disagree by {diff} (> {MAX_ABS_DIFF})")
    return diff


def output_specs(trained: TrainedModel) -> list[TensorSpec]:
    """The model's outputs as the metadata declares them."""
    if trained.task == "anomaly":
        return [
            TensorSpec(name="label", dtype="int64", shape=[None, 1]),
            TensorSpec(name="scores", dtype="float32", shape=[None, 1]),
        ]
    return [
        TensorSpec(name="label", dtype="int64", shape=[None]),
        TensorSpec(name="probabilities", dtype="float32", shape=[None, len(trained.labels)]),
    ]


def anomaly_examples(trained: TrainedModel) -> list[dict[str, object]]:
    """A few held-out inliers and outliers with the model's label and score."""
    scores = trained.estimator.decision_function(trained.x_test)
    predicted = trained.estimator.predict(trained.x_test)
    name = {1: trained.labels[1], -1: trained.labels[0]}
    chosen = []
    for truth in (1, -1):
        rows = np.flatnonzero(trained.y_test == truth)[: N_EXAMPLES_PER_CLASS * 2]
        chosen.extend(int(row) for row in rows)
    return [
        {
            "input": [round(float(v), 4) for v in trained.x_test[row]],
            "label": name[int(predicted[row])],
            "true_label": name[int(trained.y_test[row])],
            "score": round(float(scores[row]), 6),
        }
        for row in chosen
    ]


def examples(trained: TrainedModel) -> list[dict[str, object]]:
    """A few held-out rows of each class with the model's answer, for tests and docs."""
    if trained.task == "anomaly":
        return anomaly_examples(trained)
    probs = trained.estimator.predict_proba(trained.x_test)
    chosen = []
    for cls in range(len(trained.labels)):
        rows = np.flatnonzero(trained.y_test == cls)[:N_EXAMPLES_PER_CLASS]
        chosen.extend(int(row) for row in rows)
    return [
        {
            "input": [round(float(v), 4) for v in trained.x_test[row]],
            "label": trained.labels[int(np.argmax(probs[row]))],
            "true_label": trained.labels[int(trained.y_test[row])],
            "probabilities": [round(float(p), 6) for p in probs[row]],
        }
        for row in chosen
    ]


def export(spec: ModelSpec, out: Path) -> ModelMetadata:
    """Train, convert, check and write one model; returns its metadata."""
    trained = spec.train()
    onnx_bytes = to_onnx_bytes(trained)
    max_diff = check_against_sklearn(onnx_bytes, trained)
    n_features = trained.x_test.shape[1]
    folder = out / spec.name / spec.version
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MODEL_FILE).write_bytes(onnx_bytes)
    metadata = ModelMetadata(
        name=spec.name,
        version=spec.version,
        description=trained.description,
        task=trained.task,
        inputs=[TensorSpec(name=INPUT_NAME, dtype="float32", shape=[None, n_features])],
        outputs=output_specs(trained),
        labels=trained.labels,
        feature_names=trained.feature_names,
        metrics=trained.metrics(),
        training={
            **trained.training,
            "dataset": trained.dataset,
            "n_test": len(trained.x_test),
            "seed": SEED,
            "onnx_max_abs_diff": max_diff,
            "scikit_learn": sklearn.__version__,
            "skl2onnx": skl2onnx.__version__,
            "onnx_opset": TARGET_OPSET,
            "fingerprint": fingerprint(spec),
        },
        examples=examples(trained),
        sha256=sha256_of(folder / MODEL_FILE),
    )
    (folder / METADATA_FILE).write_bytes(
        orjson.dumps(metadata.model_dump(), option=orjson.OPT_INDENT_2) + b"\n"
    )
    return metadata


def copy_added(folder: Path, out: Path) -> None:
    """Copy the entry of a model added with :mod:`models.add` into ``out``, unless ``out``
    holds it already (the same metadata and a model file with its sha256)."""
    target = out / folder.parent.name / folder.name
    metadata = (folder / METADATA_FILE).read_bytes()
    model = target / MODEL_FILE
    if (
        (target / METADATA_FILE).is_file()
        and (target / METADATA_FILE).read_bytes() == metadata
        and model.is_file()
        and sha256_of(model) == orjson.loads(metadata)["sha256"]
    ):
        log.info("%s v%s is up to date in %s", folder.parent.name, folder.name, out)
        return
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(folder / MODEL_FILE, model)
    (target / METADATA_FILE).write_bytes(metadata)
    log.info("copied %s v%s (added with models.add) to %s", folder.parent.name, folder.name, out)


def main(argv: list[str] | None = None) -> int:
    """Command line: export all models (or those named with --only) under --out."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("models/build"))
    added = added_models()
    parser.add_argument(
        "--only", nargs="*", choices=sorted([*SPECS, *added]), help="models to export"
    )
    parser.add_argument("--force", action="store_true", help="train even when up to date")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    for name in args.only or sorted(SPECS):
        if name not in SPECS:  # a model brought with models.add: copied, not trained
            for folder in added[name]:
                copy_added(folder, args.out)
            continue
        spec = SPECS[name]
        if not args.force and is_exported(spec, args.out):
            log.info(
                "%s v%s is up to date in %s: not trained again", spec.name, spec.version, args.out
            )
            continue
        metadata = export(spec, args.out)
        log.info(
            "exported %s v%s to %s (%s, sha256 %s)",
            metadata.name,
            metadata.version,
            args.out / metadata.name / metadata.version,
            ", ".join(f"{k}={v}" for k, v in metadata.metrics.items()),
            metadata.sha256[:12],
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
