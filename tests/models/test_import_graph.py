"""models/ has no import cycle: the graph of its modules' imports, read from their source.

An edge is an import of another ``models`` module anywhere in a file (a function's lazy
import included) or a module named in a string (the registry in ``models/specs.py`` imports
the training modules by name).
"""

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

MODELS = Path(__file__).resolve().parents[2] / "models"


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The ``models`` modules that the file at ``path`` imports or names."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.add(node.value)
    return found & modules


def graph() -> dict[str, set[str]]:
    modules = {f"models.{p.stem}" for p in MODELS.glob("*.py") if p.stem != "__init__"}
    return {
        f"models.{p.stem}": imports_of(p, modules) - {f"models.{p.stem}"}
        for p in MODELS.glob("*.py")
        if p.stem != "__init__"
    }


def test_models_has_no_import_cycle() -> None:
    edges = graph()
    assert edges["models.specs"] >= {"models.iris", "models.trained"}  # the walk sees both kinds
    try:
        order = list(TopologicalSorter(edges).static_order())
    except CycleError as exc:
        pytest.fail(f"models/ import cycle: {' -> '.join(exc.args[1])}")
    assert (
        order.index("models.trained") < order.index("models.specs") < order.index("models.export")
    )


def test_a_cycle_would_be_found(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("from models.b import x\n")
    (tmp_path / "b.py").write_text("import importlib\nNAME = 'models.a'\n")
    edges = {
        f"models.{p.stem}": imports_of(p, {"models.a", "models.b"}) for p in tmp_path.glob("*.py")
    }
    with pytest.raises(CycleError):
        list(TopologicalSorter(edges).static_order())
