"""JSON log lines and typed settings from the environment."""

import logging

import orjson
import pytest
from pydantic import ValidationError

from shared.logs import JsonFormatter, configure_logging, request_id_var
from shared.settings import ModelSettings, ServiceSettings


def format_record(**extra: object) -> dict[str, object]:
    record = logging.LogRecord("svc", logging.WARNING, __file__, 1, "hello %s", ("you",), None)
    for key, value in extra.items():
        setattr(record, key, value)
    return orjson.loads(JsonFormatter("predictor").format(record))


def test_a_log_line_is_one_json_object_with_the_request_id() -> None:
    token = request_id_var.set("req-9")
    try:
        line = format_record(peer="predictor:8081", color_message="\x1b[1mhello\x1b[0m")
    finally:
        request_id_var.reset(token)
    assert line["msg"] == "hello you"
    assert line["level"] == "WARNING"
    assert line["service"] == "predictor"
    assert line["request_id"] == "req-9"
    assert line["peer"] == "predictor:8081"
    assert "color_message" not in line
    assert str(line["ts"]).endswith("Z")


def test_outside_a_request_there_is_no_request_id() -> None:
    assert "request_id" not in format_record()


def test_configure_logging_routes_uvicorn_through_the_json_handler() -> None:
    configure_logging("api", "DEBUG")
    root = logging.getLogger()
    assert isinstance(root.handlers[0].formatter, JsonFormatter)
    assert logging.getLogger("uvicorn.error").propagate
    assert logging.getLogger("uvicorn.access").disabled


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "9000")
    monkeypatch.setenv("MAX_BODY_BYTES", "2048")
    monkeypatch.setenv("MODEL_NAME", "digits")
    monkeypatch.setenv("ACCESS_LOG", "false")
    service, model = ServiceSettings(), ModelSettings()
    assert (service.port, service.max_body_bytes, service.access_log) == (9000, 2048, False)
    assert (model.model_name, model.model_version) == ("digits", None)


def test_bad_settings_fail_at_start_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "not-a-port")
    with pytest.raises(ValidationError, match="port"):
        ServiceSettings()
