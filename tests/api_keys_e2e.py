"""A running stack with API keys and CORS on: what the e2e tests of the patterns check.

``with keys_on(stack, "api"):`` recreates those services with ``API_KEYS`` and
``CORS_ALLOW_ORIGINS`` set and puts the stack's own settings back after the block;
:func:`assert_guarded` checks one route as a browser app and a client without a key
would meet it; :func:`assert_no_key_in_logs` reads every container's log.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from tests.compose_stack import ComposeStack

E2E_KEY = "e2e-key-3f9a61c0d7b24e58"
WRONG_KEY = "e2e-wrong-key-77c1a0b9"
ORIGIN = "https://app.example"


@contextmanager
def keys_on(stack: ComposeStack, *services: str) -> Iterator[None]:
    """``services`` run with keys and CORS on during the block, as before it after."""
    with stack.overridden(API_KEYS=E2E_KEY, CORS_ALLOW_ORIGINS=ORIGIN):
        stack.compose("up", "-d", "--wait", *services)
    try:
        yield
    finally:
        stack.compose("up", "-d", "--wait", *services)


def with_key(headers: dict[str, str] | None = None, *, bearer: bool = True) -> dict[str, str]:
    """``headers`` plus the key (``Authorization: Bearer`` or ``X-API-Key``) and the origin."""
    key = {"Authorization": f"Bearer {E2E_KEY}"} if bearer else {"X-API-Key": E2E_KEY}
    return {"Origin": ORIGIN, **key, **(headers or {})}


def assert_guarded(stack: ComposeStack, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """``method path`` (``kwargs``: the body) needs the key; CORS acts on it; the answer
    with the key (sent as ``X-API-Key``, then as Bearer: the latter is returned)."""
    preflight = stack.request(
        "OPTIONS",
        path,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    for headers, error in (({}, None), ({"X-API-Key": WRONG_KEY}, "invalid_token")):
        refused = stack.request(method, path, headers={"Origin": ORIGIN, **headers}, **kwargs)
        assert refused.status_code == 401, refused.text
        assert refused.headers["access-control-allow-origin"] == ORIGIN
        challenge = refused.headers["www-authenticate"]
        assert challenge.startswith("Bearer ")
        assert (f'error="{error}"' in challenge) == (error is not None)
        body = refused.json()["error"]
        assert body["code"] == "unauthorized"
        assert body["request_id"] == refused.headers["x-request-id"]
        assert WRONG_KEY not in refused.text
    by_header = stack.request(method, path, headers=with_key(bearer=False), **kwargs)
    assert by_header.status_code < 400, by_header.text
    answer = stack.request(method, path, headers=with_key(), **kwargs)
    assert answer.status_code < 400, answer.text
    assert answer.headers["access-control-allow-origin"] == ORIGIN
    return answer


def assert_open_without_a_key(stack: ComposeStack) -> None:
    """Probes, the docs and the scrape need no key."""
    for path in ("/health/live", "/health/ready", "/metrics", "/docs", "/openapi.json"):
        answer = stack.get(path)
        assert answer.status_code == 200, path
        assert E2E_KEY not in answer.text


def assert_no_key_in_logs(stack: ComposeStack, path: str = "/predict") -> None:
    """A refused request is in the api's log, and no container's log holds a key."""
    request_id = "e2e-wrong-key"
    refused = stack.post(path, headers={"X-API-Key": WRONG_KEY, "X-Request-ID": request_id})
    assert refused.status_code == 401
    assert stack.traced("api", request_id) == [f"POST {path} 401"]
    logs = stack.logs()
    assert E2E_KEY not in logs
    assert WRONG_KEY not in logs
