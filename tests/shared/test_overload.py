"""The in-flight bound: requests past it get 503 + Retry-After at once, probes never do."""

import asyncio

import httpx
from prometheus_client import REGISTRY
from starlette.requests import Request
from starlette.responses import Response

from shared.kit.app import ServiceApp, add_hot_route, create_app, json_response
from shared.kit.overload import InFlightLimit
from shared.kit.schemas import ErrorResponse
from shared.kit.settings import ServiceSettings


def gated_app(bound: int, gate: asyncio.Event) -> ServiceApp:
    """An app whose hot ``/work`` and plain ``/plain`` wait for ``gate`` before answering."""
    app = create_app(
        ServiceSettings(max_requests_in_flight=bound, overload_retry_after_s=2), title="t"
    )

    async def work(_: Request) -> Response:
        await gate.wait()
        return json_response({"done": True})

    add_hot_route(app, "/work", work, request_model=None, response_model=ErrorResponse)

    @app.get("/plain")
    async def plain() -> dict[str, bool]:
        await gate.wait()
        return {"done": True}

    return app


def shed_total() -> float:
    return REGISTRY.get_sample_value("mlsp_http_requests_shed_total") or 0.0


async def test_past_the_bound_the_answer_is_503_json_with_retry_after_and_nothing_waits() -> None:
    gate = asyncio.Event()
    app = gated_app(2, gate)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        admitted = [
            asyncio.create_task(client.post("/work")),
            asyncio.create_task(client.get("/plain")),
        ]
        while app.in_flight.in_flight < 2:
            await asyncio.sleep(0)
        before = shed_total()
        shed_hot, shed_plain = await client.post("/work"), await client.get("/plain")
        for answer in (shed_hot, shed_plain):
            assert answer.status_code == 503
            assert answer.headers["retry-after"] == "2"
            error = answer.json()["error"]
            assert error["code"] == "overloaded"
            assert error["request_id"] == answer.headers["x-request-id"]
        assert shed_total() == before + 2
        # Probes and scrapes are neither shed nor counted, and the scrape shows the count.
        assert (await client.get("/health/live")).status_code == 200
        scrape = await client.get("/metrics")
        assert "mlsp_http_requests_in_flight 2.0" in scrape.text
        gate.set()
        assert [a.status_code for a in await asyncio.gather(*admitted)] == [200, 200]
        assert app.in_flight.in_flight == 0
        assert (await client.post("/work")).status_code == 200


async def test_a_bound_of_zero_sheds_nothing() -> None:
    gate = asyncio.Event()
    app = gated_app(0, gate)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        waiting = [asyncio.create_task(client.post("/work")) for _ in range(50)]
        while app.in_flight.in_flight < 50:
            await asyncio.sleep(0)
        gate.set()
        assert {a.status_code for a in await asyncio.gather(*waiting)} == {200}


def test_full_only_at_the_bound() -> None:
    limit = InFlightLimit(3)
    limit.in_flight = 2
    assert not limit.full()
    limit.in_flight = 3
    assert limit.full()
    assert not InFlightLimit(0).full()
