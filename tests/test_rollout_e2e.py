"""A rolling update of sync's predictors under load fails no request, and rolls back.

Also: an unknown MODEL_VERSION is refused in one line and changes nothing.
"""

import pytest

from compose.rollout import Docker
from tests.chaos import Load
from tests.compose_stack import ComposeStack
from tests.rollout import REPLICAS, roll, rollout_under_load, scaled_up

pytestmark = pytest.mark.e2e


def versions_running(stack: ComposeStack) -> list[str]:
    """The MODEL_VERSION of each running predictor."""
    ids = stack.compose("ps", "-q", "--status", "running", "predictor").split()
    return sorted(Docker([]).version_of(container) for container in ids)


def test_rollout_to_2_and_back_fails_no_request() -> None:
    stack = scaled_up("sync")
    try:
        refused = roll(stack, "7")
        assert refused.returncode == 2
        assert refused.stderr.strip().splitlines() == [
            "rollout: MODEL_VERSION=7: iris has versions 1, 2 in the stack's model volume; "
            "nothing changed"
        ]
        assert versions_running(stack) == ["1"] * REPLICAS
        load = Load(stack).start()
        try:
            forward = rollout_under_load(stack, load, "1", "2")
            model_after_forward = stack.get("/model").json()
            back = rollout_under_load(stack, load, "2", "1")
            model_after_back = stack.get("/model").json()
        finally:
            load.stop()
    finally:
        stack.__exit__(None, None, None)
    for result, version in ((forward, "2"), (back, "1")):
        assert result.exit_code == 0, result.log
        assert len(result.samples) > 0
        assert result.failed == 0, result.timeline()
        assert result.last_version() == version
        assert result.answered(version), "no answer of the new version"
    # GET /model describes the version the predictors serve, not the highest one there is.
    assert (model_after_forward["version"], model_after_back["version"]) == ("2", "1")
