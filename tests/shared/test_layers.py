"""shared/ in layers: sub-packages only, each importing only the layers below it.

Imports are followed as ``make starter`` follows them (so what a starter copies agrees).
"""

from pathlib import Path

from compose.starter import shared_modules
from conftest import REPO_ROOT

SHARED = REPO_ROOT / "shared"
#: Each sub-package and the sub-packages it may import; ``model`` is the bottom layer.
MAY_IMPORT: dict[str, set[str]] = {
    "model": set(),
    "kit": {"model"},
    "serving": {"kit", "model"},
    "stores": {"kit", "model"},
    "jobs": {"kit", "model", "serving", "stores"},
    "v2": {"kit", "model", "serving"},
    "mechanisms": {"kit", "model"},
}


def imported_subpackages(source: Path) -> set[str]:
    """The ``shared.<sub>`` packages that ``source`` imports, directly or through others."""
    return {name.split(".")[1] for name in shared_modules([source]) if name.count(".") >= 1}


def test_shared_holds_sub_packages_and_no_loose_modules() -> None:
    loose = sorted(p.name for p in SHARED.glob("*.py") if p.name != "__init__.py")
    assert loose == []
    packages = {p.parent.name for p in SHARED.glob("*/__init__.py")}
    assert packages == set(MAY_IMPORT)


def test_each_layer_imports_only_the_layers_below_it() -> None:
    crossings = [
        f"{source.relative_to(REPO_ROOT)} imports shared.{target}"
        for layer, allowed in MAY_IMPORT.items()
        for source in (SHARED / layer).rglob("*.py")
        if "_pb2" not in source.name
        for target in imported_subpackages(source) - allowed - {layer}
    ]
    assert crossings == []
