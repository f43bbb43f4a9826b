"""The app factory: request ids, body limit, JSON errors, health, metrics, access log."""

import io
import logging

import httpx
import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from shared.kit.app import add_hot_route, create_app, json_response
from shared.kit.errors import DependencyTimeout, DependencyUnavailable
from shared.kit.health import Readiness
from shared.kit.logs import JsonFormatter
from shared.kit.offline_docs import install_offline_docs
from shared.kit.settings import ServiceSettings
from tests.docs_pages import asset_urls, docs_asset_problems
from tests.metrics_text import MetricsChange


class Echo(BaseModel):
    size: int


def make_app(readiness: Readiness | None = None, max_body_bytes: int = 100) -> FastAPI:
    app = create_app(
        ServiceSettings(max_body_bytes=max_body_bytes), title="test", readiness=readiness
    )

    async def echo(request: Request) -> Response:
        return json_response({"size": len(await request.body())})

    add_hot_route(app, "/echo", echo, request_model=None, response_model=Echo)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret detail")

    @app.get("/down")
    async def down() -> None:
        raise DependencyUnavailable("predictor is down", retry_after_s=3)

    @app.get("/slow")
    async def slow() -> None:
        raise DependencyTimeout("predictor did not answer within 0.5 s")

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    return app


@pytest.fixture
def client() -> TestClient:
    return TestClient(make_app(), raise_server_exceptions=False)


def test_request_id_is_made_or_kept_and_returned(client: TestClient) -> None:
    made = client.post("/echo", content=b"x").headers["x-request-id"]
    assert len(made) == 32
    kept = client.post("/echo", content=b"x", headers={"X-Request-ID": "abc-123"})
    assert kept.headers["x-request-id"] == "abc-123"
    insane = client.post("/echo", content=b"x", headers={"X-Request-ID": "a b<script>"})
    assert insane.headers["x-request-id"] != "a b<script>"


def test_body_over_the_limit_gets_413_by_length_and_by_stream(client: TestClient) -> None:
    assert client.post("/echo", content=b"x" * 100).json() == {"size": 100}
    declared = client.post("/echo", content=b"x" * 101)
    assert declared.status_code == 413
    assert declared.json()["error"]["code"] == "payload_too_large"

    def chunks():  # no Content-Length: counted while it streams in
        for _ in range(5):
            yield b"x" * 30

    streamed = client.post("/echo", content=chunks())
    assert streamed.status_code == 413
    assert "limit of 100 bytes" in streamed.json()["error"]["message"]


def test_unexpected_error_is_500_without_the_detail(client: TestClient) -> None:
    answer = client.get("/boom", headers={"X-Request-ID": "r1"})
    assert answer.status_code == 500
    assert answer.json() == {
        "error": {
            "code": "internal",
            "message": "internal error; the server log has the details",
            "request_id": "r1",
        }
    }
    assert "secret" not in answer.text


def test_dependency_errors_are_503_with_retry_after_and_504(client: TestClient) -> None:
    down = client.get("/down")
    assert down.status_code == 503
    assert down.headers["retry-after"] == "3"
    assert down.json()["error"]["code"] == "dependency_unavailable"
    assert client.get("/slow").status_code == 504


def test_fastapi_validation_and_routing_errors_are_json(client: TestClient) -> None:
    bad = client.get("/items/abc")
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "path.item_id"
    missing = client.get("/nowhere")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert client.get("/echo").status_code == 405


def test_readiness_reports_failing_checks() -> None:
    state = {"redis": "connection refused"}
    readiness = Readiness()

    async def redis_check() -> str | None:
        return state["redis"]

    async def raising_check() -> str | None:
        raise ConnectionError("no route")

    readiness.add("redis", redis_check)
    client = TestClient(make_app(readiness))
    assert client.get("/health/live").json() == {"status": "alive"}
    not_ready = client.get("/health/ready")
    assert not_ready.status_code == 503
    assert not_ready.headers["retry-after"] == "1"
    assert not_ready.json() == {"status": "not ready", "checks": {"redis": "connection refused"}}
    state["redis"] = None
    assert client.get("/health/ready").json() == {"status": "ready"}
    readiness.add("db", raising_check)
    assert client.get("/health/ready").json()["checks"] == {"db": "ConnectionError: no route"}


def test_metrics_count_requests_by_route_template(client: TestClient) -> None:
    change = MetricsChange(lambda: client.get("/metrics").text)
    client.get("/items/1")
    client.get("/items/2")
    client.post("/echo", content=b"x")
    items = {"method": "GET", "route": "/items/{item_id}"}
    assert change.increase("mlsp_http_requests_total", **items, status="200") == 2
    assert change.increase("mlsp_http_requests_total", route="/items/1") == 0
    echo = {"method": "POST", "route": "/echo"}
    assert change.increase("mlsp_http_requests_total", **echo, status="200") == 1
    assert change.increase("mlsp_http_request_duration_seconds_count", **echo) == 1


def test_hot_route_is_in_the_openapi_docs(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "/echo" in spec["paths"]
    assert "413" in spec["paths"]["/echo"]["post"]["responses"]


def test_access_log_line_carries_the_request_id(client: TestClient) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("api"))
    access = logging.getLogger("access")
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        client.post("/echo", content=b"x", headers={"X-Request-ID": "trace-me"})
    finally:
        access.removeHandler(handler)
    line = orjson.loads(stream.getvalue().splitlines()[-1])
    assert line["msg"] == "POST /echo 200"
    assert line["request_id"] == "trace-me"
    assert line["status"] == 200
    assert line["service"] == "api"
    assert line["duration_ms"] >= 0


def test_docs_pages_load_their_assets_from_the_app_itself(client: TestClient) -> None:
    assert docs_asset_problems(client.get) == []
    swagger = asset_urls(client.get("/docs").text)
    assert {"/docs-assets/swagger-ui-bundle.js", "/docs-assets/swagger-ui.css"} <= set(swagger)
    assert "/docs-assets/redoc.standalone.js" in asset_urls(client.get("/redoc").text)
    script_type = client.get("/docs-assets/swagger-ui-bundle.js").headers["content-type"]
    assert "javascript" in script_type
    assert client.get("/docs/oauth2-redirect").status_code == 200


def test_an_asset_on_another_host_or_missing_is_reported() -> None:
    pages = {
        "/docs": '<link href="https://cdn.example/ui.css"><script src="/gone.js"></script>',
        "/redoc": "<p>no script</p>",
    }

    def get(path: str) -> httpx.Response:
        return httpx.Response(200, text=pages[path]) if path in pages else httpx.Response(404)

    assert docs_asset_problems(get) == [
        "/docs loads https://cdn.example/ui.css from another host",
        "/docs loads /gone.js, which answered 404",
        "/redoc loads no script: []",
    ]


def test_offline_docs_need_the_openapi_and_redirect_urls() -> None:
    with pytest.raises(ValueError, match="need openapi_url"):
        install_offline_docs(FastAPI(openapi_url=None, docs_url=None, redoc_url=None))
