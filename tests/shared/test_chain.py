"""Chain: stages in turn under one deadline, each stage's time kept, 504 naming the stage."""

import asyncio
import re

import pytest

from shared.kit.errors import DependencyTimeout, DependencyUnavailable
from shared.mechanisms.chain import Chain


def stage_taking(seconds: float, answer: str = "ok", budgets: list[float] | None = None):
    async def call(left_s: float) -> str:
        if budgets is not None:
            budgets.append(left_s)
        if seconds > left_s:  # what a gRPC deadline does
            await asyncio.sleep(left_s)
            raise DependencyTimeout(f"peer did not answer within {left_s} s")
        await asyncio.sleep(seconds)
        return answer

    return call


async def test_each_stage_gets_what_the_ones_before_left() -> None:
    chain = Chain(deadline_s=1.0)
    budgets: list[float] = []
    assert await chain.call("gate", stage_taking(0.1, "in", budgets), model="m1", rows=2) == "in"
    assert await chain.call("classifier", stage_taking(0.0, "done", budgets), rows=2) == "done"
    assert 0 < budgets[0] <= 1.0
    # what the first stage took is gone from the second's budget (at least that much)
    assert 0 < budgets[1] <= budgets[0] - chain.timings[0]["ms"] / 1000 + 1e-3
    assert [t["stage"] for t in chain.timings] == ["gate", "classifier"]
    assert chain.timings[0]["model"] == "m1"
    assert chain.timings[0]["rows"] == 2
    assert chain.timings[0]["ms"] >= 100
    assert chain.elapsed_ms() >= chain.timings[0]["ms"] + chain.timings[1]["ms"]


async def test_a_stage_past_the_whole_chains_deadline_is_a_504_naming_it() -> None:
    chain = Chain(deadline_s=0.3)
    await chain.call("gate", stage_taking(0.05))  # 6x inside the deadline
    with pytest.raises(DependencyTimeout) as caught:
        await chain.call("specialist", stage_taking(5))
    message = caught.value.message
    assert message.startswith("stage specialist did not answer within the request deadline")
    assert re.search(r"\(0\.3 s for the whole chain, 0\.\d+ s left for this stage\)$", message)
    assert [t["stage"] for t in chain.timings] == ["gate", "specialist"]


async def test_no_time_left_means_the_next_stage_is_not_called() -> None:
    chain = Chain(deadline_s=0.05)
    await asyncio.sleep(0.06)
    called: list[float] = []
    with pytest.raises(DependencyTimeout, match="ran out before stage gate"):
        await chain.call("gate", stage_taking(0, budgets=called))
    assert called == []


async def test_a_stage_that_is_down_keeps_its_503() -> None:
    async def down(_: float) -> str:
        raise DependencyUnavailable("gate is unavailable; retry shortly")

    with pytest.raises(DependencyUnavailable, match="gate is unavailable"):
        await Chain(1.0).call("gate", down)
