"""Middleware a service or its user adds runs on the hot routes (/predict, /jobs/{id}) too."""

import pytest
from fastapi.testclient import TestClient
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    SimpleUser,
)
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.kit.app import ServiceApp
from tests.shared.hot_app import KNOWN_JOB, hot_app

ORIGIN = "https://app.example"
HOT_REQUESTS = (("POST", "/predict"), ("GET", f"/jobs/{KNOWN_JOB}"))


class TokenBackend(AuthenticationBackend):
    """Users named by ``Authorization: Token <name>``; other schemes are refused."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser] | None:
        scheme, _, name = conn.headers.get("authorization", "").partition(" ")
        if scheme != "Token" or not name:
            raise AuthenticationError("a token is needed")
        return AuthCredentials(["authenticated"]), SimpleUser(name)


class Tagger:
    """A user's own pure-ASGI middleware: adds ``x-tag`` to every answer."""

    def __init__(self, app: ASGIApp, tag: str) -> None:
        self.app = app
        self.tag = tag.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def tagged(message: dict) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (b"x-tag", self.tag)]
            await send(message)

        await self.app(scope, receive, tagged)


def with_cors(app: ServiceApp) -> ServiceApp:
    app.add_middleware(CORSMiddleware, allow_origins=[ORIGIN], allow_methods=["*"])
    return app


@pytest.mark.parametrize(("method", "path"), HOT_REQUESTS)
def test_cors_answers_the_preflight_and_marks_the_answer_of_a_hot_route(
    method: str, path: str
) -> None:
    client = TestClient(with_cors(hot_app()))
    preflight = client.options(
        path, headers={"Origin": ORIGIN, "Access-Control-Request-Method": method}
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    answer = client.request(method, path, headers={"Origin": ORIGIN})
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == ORIGIN
    # The house middleware still runs inside it: request id, metrics route.
    assert len(answer.headers["x-request-id"]) == 32


@pytest.mark.parametrize(("method", "path"), HOT_REQUESTS)
def test_an_authentication_middleware_guards_a_hot_route_and_names_the_user(
    method: str, path: str
) -> None:
    app = hot_app()
    app.add_middleware(AuthenticationMiddleware, backend=TokenBackend())
    client = TestClient(app)
    refused = client.request(method, path)
    assert refused.status_code == 400
    assert refused.text == "a token is needed"
    admitted = client.request(method, path, headers={"Authorization": "Token ada"})
    assert admitted.status_code == 200
    if path == "/predict":
        assert admitted.json()["user"] == "ada"


def test_added_middleware_run_in_order_around_the_house_one_on_hot_and_plain_routes() -> None:
    app = hot_app()
    app.add_middleware(Tagger, tag="inner")
    app.add_middleware(GZipMiddleware, minimum_size=1)
    client = TestClient(app)
    for answer in (
        client.post("/predict", content=b"x" * 10),
        client.get(f"/jobs/{KNOWN_JOB}"),
        client.get("/jobs/unknown"),  # the hot route's own error answer
        client.get("/health/live"),
    ):
        assert answer.headers["x-tag"] == "inner"
        assert answer.headers["content-encoding"] == "gzip"
        assert "x-request-id" in answer.headers
    assert client.get("/jobs/unknown").json()["error"]["code"] == "not_found"


def test_cors_by_setting_answers_the_preflight_before_the_key_check() -> None:
    client = TestClient(hot_app(api_keys="k3y-1234", cors_allow_origins=f"{ORIGIN}, https://b"))
    preflight = client.options(
        "/predict",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-api-key, content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    refused = client.post("/predict", headers={"Origin": ORIGIN})
    assert refused.status_code == 401  # and the browser app may read why
    assert refused.headers["access-control-allow-origin"] == ORIGIN
    assert "x-request-id" in refused.headers["access-control-expose-headers"].lower()
    admitted = client.get(f"/jobs/{KNOWN_JOB}", headers={"Origin": ORIGIN, "X-API-Key": "k3y-1234"})
    assert admitted.status_code == 200
    assert admitted.headers["access-control-allow-origin"] == ORIGIN
    other = client.post("/predict", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_the_shortcut_is_taken_only_while_no_middleware_was_added() -> None:
    bare = hot_app()
    with TestClient(bare) as client:
        assert client.post("/predict").status_code == 200
    assert bare._hot_shortcut is not None
    added = with_cors(hot_app())
    with TestClient(added) as client:
        assert client.post("/predict").status_code == 200
    assert added._hot_shortcut is None
