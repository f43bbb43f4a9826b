"""Fixtures every test suite may use: an exported model repository, service loading,
and real Redis and PostgreSQL servers (see tests/local_servers.py)."""

import importlib.util
import itertools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
import redis

from models.export import export
from models.specs import SPECS
from tests.local_servers import fresh_database, postgres_server, redis_server

REPO_ROOT = Path(__file__).resolve().parent
_databases = itertools.count()


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


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server on a free port of 127.0.0.1 for the whole session."""
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def redis_url(redis_server_url: str) -> str:
    """The session's Redis, emptied for this test."""
    client = redis.Redis.from_url(redis_server_url)
    client.flushall()
    client.close()
    return redis_server_url


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A real PostgreSQL server on a free port of 127.0.0.1 for the whole session."""
    with postgres_server() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server_url: str) -> str:
    """A new, empty database on the session's PostgreSQL server for this test."""
    return fresh_database(postgres_server_url, f"test_{next(_databases)}")
