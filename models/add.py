"""Bring your own model: an ``.onnx`` file or a scikit-learn classifier saved with joblib.

    python -m models.add PATH --name N [--version V] [--labels A B C] [--features F1 F2 ..]
    make model-add FILE=PATH NAME=N [VERSION=V] [LABELS="A B C"]

writes the repository entry ``models/added/<name>/<version>/`` (``model.onnx`` and
``metadata.json`` with its sha256, as :mod:`models.export` writes them), with the
tensors, labels and shapes read from the graph. A joblib file is converted with
skl2onnx and checked against scikit-learn's probabilities on sample rows first.
The entry ships with the model-export image: name it after ``--only`` in a
pattern's model-export command and set ``MODEL_NAME`` (see the pattern README).

It refuses, with one line, what the services could not serve: a regressor (they
answer a class and its probabilities), an input whose number of features is not
fixed, several inputs, probabilities as a list of maps (ZipMap), or an estimator
skl2onnx cannot convert. Unpickling runs code: add only joblib files you trust.
"""

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import orjson

from shared.model.metadata import (
    METADATA_FILE,
    MODEL_FILE,
    ModelError,
    ModelMetadata,
    TensorSpec,
    ort_specs,
    sha256_of,
    version_key,
)
from shared.serving.model import OnnxModel

ADDED = Path(__file__).resolve().parent / "added"
SAMPLE_ROWS = 64
MAX_ABS_DIFF = 1e-4
#: ONNX-ML classifier operators and the attributes holding their class labels.
_CLASS_LABELS = ("classlabels_strings", "classlabels_int64s", "classlabels_ints")
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class AddError(Exception):
    """The file cannot become a model the playground serves (the message says why)."""


def from_joblib(path: Path) -> tuple[bytes, list[str], list[str], dict[str, Any]]:
    """A scikit-learn classifier saved with joblib, as ONNX: bytes, labels, feature
    names, and what the metadata's ``training`` says (the check's largest difference)."""
    import joblib  # noqa: PLC0415 - only for joblib files
    from skl2onnx import convert_sklearn  # noqa: PLC0415
    from skl2onnx.common.data_types import FloatTensorType  # noqa: PLC0415
    from sklearn.base import is_classifier  # noqa: PLC0415

    try:
        estimator = joblib.load(path)
    except Exception as exc:
        raise AddError(f"{path} is not a joblib file joblib can load: {exc}") from None
    kind = type(estimator).__name__
    if not is_classifier(estimator):
        raise AddError(
            f"{path} holds a {kind}, not a classifier: the playground serves a class and its "
            "probabilities"
        )
    n_features = getattr(estimator, "n_features_in_", None)
    if not isinstance(n_features, int):
        raise AddError(f"{path} holds a {kind} that is not fitted (no n_features_in_)")
    try:
        model = convert_sklearn(
            estimator,
            initial_types=[("input", FloatTensorType([None, n_features]))],
            options={"zipmap": False},
            target_opset=17,
            name=kind,
        )
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AddError(f"skl2onnx cannot convert {path}'s {kind}: {first}") from None
    onnx_bytes = rename_outputs(model.SerializeToString())
    rows = np.random.default_rng(0).normal(0.0, 2.0, (SAMPLE_ROWS, n_features)).astype(np.float32)
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    actual = session.run(["probabilities"], {"input": rows})[0]
    diff = float(np.abs(actual - estimator.predict_proba(rows)).max())
    if diff > MAX_ABS_DIFF:
        raise AddError(f"ONNX and scikit-learn disagree by {diff:.2g} on sample rows of {path}")
    names = getattr(estimator, "feature_names_in_", None)
    features = [str(n) for n in names] if names is not None else []
    training = {"source": path.name, "estimator": kind, "onnx_max_abs_diff": diff}
    return onnx_bytes, [str(c) for c in estimator.classes_], features, training


def rename_outputs(onnx_bytes: bytes) -> bytes:
    """The graph with its two outputs named ``label`` and ``probabilities``, as the services
    ask for them; AddError for a graph that does not answer a class and its probabilities."""
    try:
        model = onnx.load_from_string(onnx_bytes)
    except Exception as exc:  # protobuf's DecodeError, and whatever else a bad file raises
        raise AddError(f"not an ONNX model ({type(exc).__name__}: {exc})") from None
    outputs = list(model.graph.output)
    described = ", ".join(f"{o.name!r}" for o in outputs)
    if any(o.type.HasField("sequence_type") or o.type.HasField("map_type") for o in outputs):
        raise AddError(
            f"outputs {described}: probabilities as a list of maps (ZipMap); export the "
            "classifier with skl2onnx's options={'zipmap': False}"
        )
    ranks = [len(o.type.tensor_type.shape.dim) for o in outputs]
    if len(outputs) != 2 or sorted(ranks) not in ([1, 2], [2, 2]):
        raise AddError(
            f"outputs {described}: a regressor or another kind of model; the playground "
            "serves classifiers (a label and the class probabilities)"
        )
    label, probabilities = sorted(outputs, key=_is_probabilities)
    renames = {label.name: "label", probabilities.name: "probabilities"}
    for node in model.graph.node:
        node.output[:] = [renames.get(name, name) for name in node.output]
    for output in model.graph.output:
        output.name = renames[output.name]
    return model.SerializeToString()


def _is_probabilities(output: onnx.ValueInfoProto) -> bool:
    tensor = output.type.tensor_type
    return tensor.elem_type == onnx.TensorProto.FLOAT and len(tensor.shape.dim) == 2


def graph_labels(onnx_bytes: bytes) -> list[str]:
    """The class labels a classifier operator of the graph names (empty when none does)."""
    for node in onnx.load_from_string(onnx_bytes).graph.node:
        for attribute in node.attribute:
            if attribute.name in _CLASS_LABELS:
                values = onnx.helper.get_attribute_value(attribute)
                return [v.decode() if isinstance(v, bytes) else str(v) for v in values]
    return []


def describe(onnx_bytes: bytes) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The graph's input and output tensors; AddError for an input the services cannot fill."""
    try:
        session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own errors: an invalid or unsupported graph
        raise AddError(f"onnxruntime cannot open the model: {exc}") from None
    inputs, outputs = ort_specs(session.get_inputs()), ort_specs(session.get_outputs())
    if len(inputs) != 1:
        raise AddError(f"{len(inputs)} inputs; the services send one (rows of features)")
    (tensor,) = inputs
    if tensor.dtype != "float32" or len(tensor.shape) != 2 or tensor.shape[1] is None:
        shown = ", ".join("?" if d is None else str(d) for d in tensor.shape)
        raise AddError(
            f"input {tensor.name!r} is {tensor.dtype}[{shown}]; the services send float32 rows "
            "of a fixed number of features, [?, n]"
        )
    return inputs, outputs


def next_version(out: Path, name: str) -> str:
    """One more than the highest numbered version of ``name`` under ``out`` ("1" if none)."""
    folder = out / name
    numbers = [int(p.name) for p in folder.iterdir() if p.name.isdigit()] if folder.is_dir() else []
    return str(max(numbers, default=0) + 1)


def add(
    path: Path,
    name: str,
    out: Path = ADDED,
    *,
    version: str | None = None,
    labels: list[str] | None = None,
    features: list[str] | None = None,
) -> ModelMetadata:
    """Write the repository entry of ``path`` as ``name`` (next version unless given)."""
    if not path.is_file():
        raise AddError(f"{path}: no such file")
    for what, value in (("name", name), ("version", version or "1")):
        if not _SAFE_NAME.fullmatch(value):
            raise AddError(f"--{what} {value!r}: letters, digits, '.', '_' and '-' only")
    if path.suffix == ".onnx":
        onnx_bytes = rename_outputs(path.read_bytes())
        found_labels, found_features = graph_labels(onnx_bytes), []
        training: dict[str, Any] = {"source": path.name}
    elif path.suffix in (".joblib", ".pkl", ".pickle"):
        onnx_bytes, found_labels, found_features, training = from_joblib(path)
    else:
        raise AddError(f"{path}: give an .onnx file or a joblib file (.joblib, .pkl)")
    inputs, outputs = describe(onnx_bytes)
    n_classes = next(spec.shape[-1] for spec in outputs if spec.name == "probabilities")
    labels = labels or found_labels or [str(i) for i in range(n_classes or 0)]
    if n_classes is not None and len(labels) != n_classes:
        raise AddError(f"{len(labels)} labels for {n_classes} classes")
    features = features or found_features
    if features and len(features) != inputs[0].shape[1]:
        raise AddError(f"{len(features)} feature names for {inputs[0].shape[1]} features")
    version = version or next_version(out, name)
    folder = out / name / version
    if folder.exists():
        raise AddError(f"{folder} exists already; give another --version")
    folder.mkdir(parents=True)
    (folder / MODEL_FILE).write_bytes(onnx_bytes)
    metadata = ModelMetadata(
        name=name,
        version=version,
        description=f"Added from {path.name} with models.add.",
        inputs=inputs,
        outputs=outputs,
        labels=labels,
        feature_names=features,
        training=training,
        sha256=sha256_of(folder / MODEL_FILE),
    )
    (folder / METADATA_FILE).write_bytes(
        orjson.dumps(metadata.model_dump(), option=orjson.OPT_INDENT_2) + b"\n"
    )
    try:  # the check every service makes at start
        OnnxModel.load(out, name, version)
    except ModelError as exc:
        for written in folder.iterdir():
            written.unlink()
        folder.rmdir()
        raise AddError(str(exc)) from None
    return metadata


def added_models(root: Path = ADDED) -> dict[str, list[Path]]:
    """What ``models.export --only`` can copy from ``root``: ``name`` (every version of it)
    and ``name:version``, each to its version folders."""
    found: dict[str, list[Path]] = {}
    for folder in sorted(root.glob(f"*/*/{METADATA_FILE}")):
        version_dir = folder.parent
        name = version_dir.parent.name
        found.setdefault(name, []).append(version_dir)
        found[f"{name}:{version_dir.name}"] = [version_dir]
    for folders in found.values():
        folders.sort(key=lambda p: version_key(p.name))
    return found


def main(argv: list[str] | None = None) -> int:
    """Command line: one line saying what is wrong, exit 2, and nothing written."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--version", help="default: one more than the highest there")
    parser.add_argument("--labels", nargs="+", help="class names, in output order")
    parser.add_argument("--features", nargs="+", help="feature names, in input order")
    parser.add_argument("--out", type=Path, default=ADDED)
    args = parser.parse_args(argv)
    try:
        metadata = add(
            args.path,
            args.name,
            args.out,
            version=args.version,
            labels=args.labels,
            features=args.features,
        )
    except AddError as exc:
        print(f"models.add: {exc}", file=sys.stderr)
        return 2
    where = args.out / metadata.name / metadata.version
    print(
        f"added {metadata.name} v{metadata.version} to {where} ({len(metadata.labels)} classes, "
        f"{metadata.input.shape[1]} features, sha256 {metadata.sha256[:12]})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
