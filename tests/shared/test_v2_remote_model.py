"""RemoteModel: the model's metadata from the repository, its answers from the predictor."""

from pathlib import Path

import numpy as np
import pytest

from conftest import PredictorProcess, _free_port
from shared.errors import DependencyUnavailable
from shared.model import ModelError
from shared.v2.remote_model import RemoteModel, RemoteModelSettings

ROWS = np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)


def settings(model_repo: Path, url: str, **env: str) -> RemoteModelSettings:
    return RemoteModelSettings(model_dir=model_repo, predictor_url=url, **env)


async def test_probabilities_come_from_the_predictor_serving_our_version(
    model_repo: Path, predictor_server: PredictorProcess
) -> None:
    model = RemoteModel.from_settings(
        settings(model_repo, predictor_server.grpc_target, model_name="iris", model_version="1")
    )
    assert await model.check_ready() == "predictor client not started"
    model.connect()
    try:
        assert await model.check_ready() is None
        probabilities = await model.predict_proba(ROWS)
    finally:
        await model.close()
    assert probabilities.shape == (1, 3)
    assert probabilities.argmax() == 0


async def test_a_predictor_that_is_down_is_not_ready_and_503(model_repo: Path) -> None:
    model = RemoteModel.from_settings(settings(model_repo, f"127.0.0.1:{_free_port()}"))
    model.connect()
    try:
        reason = await model.check_ready()
        assert reason is not None
        assert reason.endswith("is unreachable or does not serve iris v1")
        with pytest.raises(DependencyUnavailable, match="predictor is unavailable"):
            await model.predict_proba(ROWS)
    finally:
        await model.close()


def test_an_unknown_version_is_refused_at_start(model_repo: Path) -> None:
    with pytest.raises(ModelError, match="has no version '9'"):
        RemoteModel.from_settings(settings(model_repo, "x:1", model_version="9"))
