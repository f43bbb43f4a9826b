"""Fixtures every test suite may use: an exported model repository, service loading,
predictors (``predictor_server``, ``slow_predictor``, or :func:`running_predictor` with
settings of its own), and real Redis and PostgreSQL servers (see tests/local_servers.py)."""

import importlib
import importlib.util
import itertools
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import httpx
import pytest
import redis

from models.export import export
from models.specs import SPECS
from tests.local_servers import fresh_database, postgres_server, redis_server
from tests.metrics_text import infer_calls

REPO_ROOT = Path(__file__).resolve().parent
_databases = itertools.count()


@pytest.fixture(scope="session")
def model_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model repository with the first version of every model, exported once for the
    whole test session (what a pattern serves unless it names another version)."""
    out = tmp_path_factory.mktemp("models")
    for key, spec in SPECS.items():
        if key == spec.name:
            export(spec, out)
    return out


@pytest.fixture(scope="session")
def versioned_model_repo(model_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`model_repo` with the later versions too (iris 2)."""
    out = tmp_path_factory.mktemp("versioned-models")
    shutil.copytree(model_repo, out, dirs_exist_ok=True)
    for key, spec in SPECS.items():
        if key != spec.name:
            export(spec, out)
    return out


def import_file(path: Path, name: str) -> ModuleType:
    """Import the Python file at ``path`` as module ``name`` (a script that is no package's)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def service_folder(pattern: str, service: str) -> Path:
    """``patterns/<pattern>/<service>``, or ``<service>`` in a starter (services at its root)."""
    folder = REPO_ROOT / "patterns" / pattern / service
    return folder if folder.is_dir() else REPO_ROOT / service


def service_module(pattern: str, service: str, name: str) -> ModuleType:
    """Module ``name`` of a pattern's service, imported by the plain name the service uses.

    A module that only one pattern needs lives in that pattern's service folder, which the
    image runs from; importing it under the same name here means one copy (one set of
    metrics) whichever of the tests and the service imports it first.
    """
    if name not in sys.modules:
        folder = str(service_folder(pattern, service))
        sys.path.insert(0, folder)
        try:
            importlib.import_module(name)
        finally:
            sys.path.remove(folder)
    return sys.modules[name]


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
        folder = service_folder(pattern, service)
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


def _generate_stubs() -> None:
    """Generate the gRPC stubs when missing (``make test`` does it too)."""
    proto = REPO_ROOT / "shared" / "v2" / "proto"
    if (proto / "inference.proto").is_file() and not (proto / "inference_pb2.py").is_file():
        from shared.v2.codegen import generate  # noqa: PLC0415 - needs grpc_tools only here

        generate()


_generate_stubs()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PredictorProcess:
    """A real predictor (``python -m shared.v2.server``) running for the tests."""

    process: subprocess.Popen[bytes]
    rest_url: str
    grpc_target: str

    def infer_calls(self) -> float:
        """ModelInfer calls it has answered so far (gRPC and REST), read from its /metrics."""
        return infer_calls(httpx.get(f"{self.rest_url}/metrics", timeout=5).text)


@contextmanager
def grpc_process(
    command: list[str], env: dict[str, str], grpc_port: int, cwd: Path = REPO_ROOT
) -> Iterator[subprocess.Popen[bytes]]:
    """``command`` running (with ``env`` added) until its gRPC port on 127.0.0.1 answers;
    terminated after the block."""
    from shared.kit.probe import probe_grpc  # noqa: PLC0415 - after the stubs exist

    process = subprocess.Popen(command, cwd=cwd, env={**os.environ, **env})
    target = f"127.0.0.1:{grpc_port}"
    deadline = time.monotonic() + 30
    while not probe_grpc(target, timeout_s=0.5):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"{' '.join(command)} did not start")
        time.sleep(0.1)
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=15)


@contextmanager
def running_predictor(model_repo: Path, **settings: str) -> Iterator[PredictorProcess]:
    """A predictor on free ports of 127.0.0.1 with extra ``settings`` (``MODELS``, ``DELAY_MS``)."""
    rest_port, grpc_port = _free_port(), _free_port()
    env = {
        "MODEL_DIR": str(model_repo),
        "HOST": "127.0.0.1",
        "PORT": str(rest_port),
        "GRPC_PORT": str(grpc_port),
        "LOG_LEVEL": "WARNING",
        **settings,
    }
    command = [sys.executable, "-m", "shared.v2.server"]
    with grpc_process(command, env, grpc_port) as process:
        yield PredictorProcess(process, f"http://127.0.0.1:{rest_port}", f"127.0.0.1:{grpc_port}")


@pytest.fixture(scope="session")
def predictor_server(model_repo: Path) -> Iterator[PredictorProcess]:
    """A predictor serving every exported model, on free ports of 127.0.0.1."""
    with running_predictor(model_repo) as predictor:
        yield predictor


@pytest.fixture(scope="session")
def slow_predictor(model_repo: Path) -> Iterator[PredictorProcess]:
    """A predictor of every model that waits 300 ms before each ModelInfer (``DELAY_MS``)."""
    with running_predictor(model_repo, DELAY_MS="300") as predictor:
        yield predictor


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
