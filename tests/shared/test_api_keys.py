"""Optional API keys: 401 JSON without a known key, health and docs open, keys never shown."""

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shared.kit.api_keys import ApiKeyError, ApiKeyMiddleware, configured_keys, parse_keys
from shared.kit.settings import ServiceSettings
from tests.metrics_text import MetricsChange
from tests.shared.hot_app import KNOWN_JOB, hot_app

KEY = "k3y-Of-Ada-7f1c9e"
OTHER_KEY = "k3y-of-bob-22aa0b"
HOT_REQUESTS = (("POST", "/predict"), ("GET", f"/jobs/{KNOWN_JOB}"))


@pytest.fixture
def client() -> TestClient:
    return TestClient(hot_app(api_keys=f"{KEY}, {OTHER_KEY}"))


@pytest.mark.parametrize(("method", "path"), HOT_REQUESTS)
def test_a_hot_route_needs_a_known_key_by_bearer_or_header(
    client: TestClient, method: str, path: str
) -> None:
    missing = client.request(method, path)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith('Bearer realm="api"')
    error = missing.json()["error"]
    assert error["code"] == "unauthorized"
    assert "X-API-Key" in error["message"]
    assert error["request_id"] == missing.headers["x-request-id"]

    wrong = client.request(method, path, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
    assert "nope" not in wrong.text
    assert client.request(method, path, headers={"X-API-Key": "nope"}).status_code == 401

    for headers in (
        {"Authorization": f"Bearer {KEY}"},
        {"Authorization": f"bearer {OTHER_KEY}"},
        {"X-API-Key": KEY},
    ):
        assert client.request(method, path, headers=headers).status_code == 200


def test_a_key_of_another_scheme_or_empty_is_refused(client: TestClient) -> None:
    for headers in (
        {"Authorization": f"Basic {KEY}"},
        {"Authorization": "Bearer "},
        {"X-API-Key": ""},
        {"X-API-Key": KEY[:-1]},
        {"X-API-Key": KEY + "x"},
    ):
        assert client.post("/predict", headers=headers).status_code == 401, headers


def test_plain_routes_need_a_key_too_but_health_and_docs_do_not(client: TestClient) -> None:
    assert client.get("/jobs/unknown").status_code == 401  # before the route's own 404
    assert client.get("/no-such-route").status_code == 401
    for path in ("/health/live", "/health/ready", "/docs", "/redoc", "/openapi.json", "/metrics"):
        answer = client.get(path)
        assert answer.status_code == 200, path
        assert KEY not in answer.text
        assert OTHER_KEY not in answer.text


def test_metrics_need_a_key_when_the_setting_says_so() -> None:
    client = TestClient(hot_app(api_keys=KEY, metrics_need_key=True))
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"X-API-Key": KEY}).status_code == 200
    assert client.get("/health/ready").status_code == 200


def test_refusals_are_counted_and_logged_without_the_key(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    change = MetricsChange(lambda: client.get("/metrics").text)
    with caplog.at_level(logging.DEBUG):
        client.post("/predict", headers={"Authorization": "Bearer not-a-key-123"})
        client.post("/predict", headers={"X-API-Key": KEY})
    # Refused before routing: counted like any request no route took.
    assert change.increase("mlsp_http_requests_total", route="unmatched", status="401") == 1
    assert change.increase("mlsp_http_requests_total", route="/predict", status="200") == 1
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "POST /predict 401" in logged
    for secret in (KEY, OTHER_KEY, "not-a-key-123"):
        assert secret not in logged


def test_settings_show_no_key() -> None:
    settings = ServiceSettings(api_keys=KEY)
    assert KEY not in repr(settings)
    assert KEY not in str(settings.model_dump())


def test_keys_come_from_the_variable_and_the_file(tmp_path: Path) -> None:
    assert parse_keys(" a1, b2 ,\n# c3 is a comment\nd4 # and so is this\n\n") == ("a1", "b2", "d4")
    assert configured_keys(ServiceSettings()) == ()
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"{OTHER_KEY}\n")
    settings = ServiceSettings(api_keys=KEY, api_keys_file=keys_file)
    assert configured_keys(settings) == (KEY, OTHER_KEY)
    client = TestClient(hot_app(api_keys_file=keys_file))
    assert client.post("/predict", headers={"X-API-Key": OTHER_KEY}).status_code == 200
    assert client.post("/predict", headers={"X-API-Key": KEY}).status_code == 401


@pytest.mark.parametrize(
    ("file_text", "message"),
    [(None, "No such file"), ("# none here\n", "holds no key")],
)
def test_a_keys_file_that_is_missing_or_empty_stops_the_start(
    tmp_path: Path, file_text: str | None, message: str
) -> None:
    keys_file = tmp_path / "keys"
    if file_text is not None:
        keys_file.write_text(file_text)
    with pytest.raises(ApiKeyError, match=message):
        hot_app(api_keys_file=keys_file)


def test_a_key_with_spaces_or_no_key_is_refused_at_start() -> None:
    with pytest.raises(ApiKeyError, match="no spaces"):
        parse_keys("caf\u00e9-key")
    with pytest.raises(ApiKeyError, match="at least one key"):
        ApiKeyMiddleware(hot_app(), keys=())


def test_keys_off_by_default_leave_the_shortcut_and_on_take_the_stack() -> None:
    off, on = hot_app(), hot_app(api_keys=KEY)
    for app in (off, on):
        with TestClient(app) as client:
            client.post("/predict", headers={"X-API-Key": KEY})
    assert off._hot_shortcut is not None
    assert on._hot_shortcut is None
