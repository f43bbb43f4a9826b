"""End-to-end checks that every pattern answering at once shares, written once.

A pattern's ``tests/test_e2e.py`` imports them by name; pytest then runs them there, with that
module's ``stack`` fixture and its ``e2e`` mark.
"""

import asyncio

import httpx
import orjson

from tests.bad_input import GOOD_ROW
from tests.compose_stack import ComposeStack


def test_smoke_load(stack: ComposeStack) -> None:
    """A short Locust run of the pattern's scenario: requests made, none failed."""
    total = stack.locust_smoke()["Aggregated"]
    assert total["requests"] > 0
    assert total["failures"] == 0


def test_readme_examples(stack: ComposeStack) -> None:
    """The README's marked examples, run against the stack, answer as quoted."""
    assert stack.readme_example_problems() == []


async def flood(stack: ComposeStack) -> tuple[list[httpx.Response], list[httpx.Response]]:
    """400 requests of 100 rows each on 100 connections, and 20 probes among them."""
    body = orjson.dumps({"instances": [GOOD_ROW] * 100})
    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(base_url=stack.base_url, limits=limits, timeout=30) as client:
        predicts = [
            client.post("/predict", content=body, headers={"Content-Type": "application/json"})
            for _ in range(400)
        ]
        probes = [client.get("/health/ready") for _ in range(20)]
        answers = await asyncio.gather(*predicts, *probes)
    return answers[:400], answers[400:]


def assert_refused_as_the_contract_says(
    predicts: list[httpx.Response], probes: list[httpx.Response]
) -> None:
    """Only 200s and 503s, some of each; each 503 the contract's JSON error (``overloaded``)
    with Retry-After and the request id it answers; probes all answered."""
    assert {a.status_code for a in probes} == {200}  # probes are never refused
    assert {a.status_code for a in predicts} == {200, 503}
    for refused in (a for a in predicts if a.status_code == 503):
        assert refused.headers["retry-after"] == "1"
        assert refused.headers["content-type"] == "application/json"
        error = refused.json()["error"]
        assert error["code"] == "overloaded"
        assert error["message"] == "over capacity; retry after 1 s"
        assert error["request_id"] == refused.headers["x-request-id"]
