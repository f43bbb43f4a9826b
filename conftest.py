"""Fixtures every test suite may use: an exported model repository and service loading."""

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from models.export import export
from models.specs import SPECS

REPO_ROOT = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def model_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model repository with every model exported once for the whole test session."""
    out = tmp_path_factory.mktemp("models")
    for spec in SPECS.values():
        export(spec, out)
    return out


@pytest.fixture
def load_service(monkeypatch: pytest.MonkeyPatch, model_repo: Path) -> Callable[..., ModuleType]:
    """Import a pattern's service module by path, with its settings taken from ``env``.

    Each pattern's service lives in ``patterns/<pattern>/<service>/main.py``; the
    module is loaded under a unique name so that several patterns' ``main``
    modules can be tested in one session.
    """

    def load(pattern: str, service: str, **env: str) -> ModuleType:
        monkeypatch.setenv("MODEL_DIR", str(model_repo))
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        folder = REPO_ROOT / "patterns" / pattern / service
        name = f"svc_{pattern.replace('-', '_')}_{service}_main"
        spec = importlib.util.spec_from_file_location(name, folder / "main.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        monkeypatch.syspath_prepend(str(folder))
        monkeypatch.setitem(sys.modules, name, module)
        spec.loader.exec_module(module)
        return module

    return load
