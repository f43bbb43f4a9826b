"""async's worker process: it loads the model before working, and its job runs the model."""

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from shared.model.metadata import ModelError


@pytest.fixture
def worker(load_service: Callable[..., ModuleType]) -> ModuleType:
    return load_service("async", "worker", REDIS_URL="redis://127.0.0.1:1/0", EXTRA_WORK_MS="5")


def test_main_loads_the_model_then_works_the_queue(
    worker: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple] = []
    monkeypatch.setattr(worker, "run_worker", lambda *args, **kwargs: calls.append((args, kwargs)))
    worker.main()
    (args, kwargs) = calls[0]
    assert args[0] == ["predict"]
    assert kwargs["checks"]["model"]() is None
    answer = worker.tasks.predict([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])
    assert [p["label"] for p in answer["predictions"]] == ["setosa", "virginica"]
    assert answer["model_name"] == "iris"


def test_a_worker_without_a_model_is_not_ready_and_runs_no_job(worker: ModuleType) -> None:
    worker.tasks.serve(None)  # type: ignore[arg-type]
    assert worker.tasks.model_check() == "model not loaded"
    with pytest.raises(RuntimeError, match="no model loaded"):
        worker.tasks.predict([[5.1, 3.5, 1.4, 0.2]])


def test_a_missing_model_stops_the_start(
    load_service: Callable[..., ModuleType], tmp_path: Path
) -> None:
    worker = load_service("async", "worker", REDIS_URL="redis://127.0.0.1:1/0")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MODEL_DIR", str(tmp_path))
        with pytest.raises(ModelError, match="no model 'iris'"):
            worker.main()
