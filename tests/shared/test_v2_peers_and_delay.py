"""ModelPeer (a model on a predictor, as an api sees it), per-call deadlines and DELAY_MS."""

import time
from pathlib import Path

import numpy as np
import pytest

from conftest import PredictorProcess, _free_port, running_predictor
from shared.kit.errors import DependencyTimeout, DependencyUnavailable
from shared.model.metadata import ModelError, load_metadata
from shared.v2.client import V2Client
from shared.v2.peers import ModelPeer, check_same_inputs, composite_version, connected
from shared.v2.server import PredictorSettings

ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [60.0, 30.0, 50.0, 20.0]], dtype=np.float32)


def test_delay_ms_is_off_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DELAY_MS", raising=False)
    assert PredictorSettings().delay_ms == 0
    monkeypatch.setenv("DELAY_MS", "-1")
    with pytest.raises(ValueError, match="delay_ms"):
        PredictorSettings()


async def test_delay_ms_delays_every_answer_and_a_call_may_set_its_deadline(
    slow_predictor: PredictorProcess,
) -> None:
    client = V2Client(slow_predictor.grpc_target, timeout_s=5, peer="gate")  # DELAY_MS=300
    try:
        started = time.perf_counter()
        outputs = await client.infer("iris-gate", {"input": ROWS}, ["label"])
        assert time.perf_counter() - started >= 0.3
        assert outputs["label"][:, 0].tolist() == [1, -1]
        with pytest.raises(DependencyTimeout, match=r"^gate did not answer within 0\.1 s$"):
            await client.infer("iris-gate", {"input": ROWS}, ["label"], timeout_s=0.1)
        assert await client.ready("iris-gate")  # health answers at once
    finally:
        await client.close()


async def test_a_peer_calls_its_model_and_checks_the_predictor_serves_it(
    model_repo: Path, predictor_server: PredictorProcess
) -> None:
    gate = ModelPeer.from_repository(
        "gate", predictor_server.grpc_target, model_repo, "iris-gate", task="anomaly"
    )
    classifier = ModelPeer.from_repository(
        "classifier", predictor_server.grpc_target, model_repo, "iris"
    )
    assert await gate.check_ready() == "gate client not started"
    async with connected([gate, classifier], timeout_s=2):
        assert await gate.check_ready() is None
        scores = (await gate.infer(ROWS, ["scores"]))["scores"]
        assert scores.shape == (2, 1)
        assert scores[0, 0] > 0 > scores[1, 0]
        probabilities = (await classifier.infer(ROWS[:1], ["probabilities"]))["probabilities"]
        assert probabilities.argmax() == 0
    assert composite_version([gate, classifier]) == "iris-gate:1+iris:1"
    check_same_inputs([gate, classifier])


async def test_a_peer_that_is_down_is_503_naming_its_role_and_not_ready(model_repo: Path) -> None:
    peer = ModelPeer.from_repository("forest", f"127.0.0.1:{_free_port()}", model_repo, "iris")
    async with connected([peer], timeout_s=1):
        reason = await peer.check_ready()
        assert reason is not None
        assert reason.startswith("forest at 127.0.0.1:")
        assert reason.endswith("is unreachable or does not serve iris v1")
        with pytest.raises(DependencyUnavailable, match=r"^forest is unavailable; retry shortly$"):
            await peer.infer(ROWS, ["probabilities"])


def test_a_peer_refuses_a_model_of_the_wrong_task(model_repo: Path) -> None:
    with pytest.raises(ModelError, match="gate model 'iris' does 'classification', not 'anomaly'"):
        ModelPeer.from_repository("gate", "x:1", model_repo, "iris", task="anomaly")


def test_a_peer_may_pin_the_version_it_calls(model_repo: Path) -> None:
    pinned = ModelPeer.from_repository("model", "x:1", model_repo, "iris", version="1")
    assert pinned.ref == "iris:1"
    with pytest.raises(ModelError, match="has no version '9'"):
        ModelPeer.from_repository("model", "x:1", model_repo, "iris", version="9")


def test_peers_must_take_the_same_rows(model_repo: Path) -> None:
    iris = ModelPeer.from_repository("a", "x:1", model_repo, "iris")
    other = ModelPeer.from_repository("b", "x:1", model_repo, "iris-forest")
    other.metadata = other.metadata.model_copy(update={"feature_names": ["w", "x", "y", "z"]})
    with pytest.raises(ModelError, match=r"b model 'iris-forest' takes \['w', 'x', 'y', 'z'\]"):
        check_same_inputs([iris, other])


@pytest.mark.parametrize("served", ["1", "2"])
async def test_an_unpinned_peer_says_which_version_the_predictor_serves(
    versioned_model_repo: Path, served: str
) -> None:
    with running_predictor(versioned_model_repo, MODELS="iris", MODEL_VERSION=served) as predictor:
        peer = ModelPeer.from_repository(
            "predictor", predictor.grpc_target, versioned_model_repo, "iris", pinned=False
        )
        assert peer.metadata.version == "2"  # read before any call: the highest version's
        async with connected([peer], timeout_s=2):
            served_metadata = await peer.served_metadata()  # nothing answered yet: one call
            assert served_metadata.version == served
            assert (
                served_metadata.sha256 == load_metadata(versioned_model_repo, "iris", served).sha256
            )
            _, answered = await peer.infer_versioned(ROWS, ["probabilities"])
            assert answered == served


async def test_a_pinned_peer_serves_its_own_metadata_without_a_call(model_repo: Path) -> None:
    peer = ModelPeer.from_repository("predictor", "127.0.0.1:9", model_repo, "iris")
    assert await peer.served_metadata() is peer.metadata
