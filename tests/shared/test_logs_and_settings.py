"""JSON log lines and typed settings from the environment."""

import io
import logging
import os
import time

import orjson
import pytest
from pydantic import ValidationError

from shared.kit.logs import (
    PIPE_BUF,
    BufferedStreamHandler,
    JsonFormatter,
    configure_logging,
    line_aligned_chunks,
    request_id_var,
)
from shared.kit.settings import ModelSettings, ServiceSettings


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


class Pipe:
    """A pipe whose write end is a raw binary stream; ``read()`` takes what has arrived."""

    def __init__(self) -> None:
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        self.reader = os.fdopen(read_fd, "rb", buffering=0)
        self.writer = io.FileIO(write_fd, "w")

    def read(self) -> str:
        return (self.reader.read() or b"").decode()


def test_buffered_lines_are_written_every_interval_warnings_at_once() -> None:
    pipe = Pipe()
    handler = BufferedStreamHandler(1.0, pipe.writer)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("test.buffered")
    logger.propagate = False
    logger.setLevel(logging.INFO)  # whatever level other tests left the root at
    logger.addHandler(handler)
    try:
        logger.warning("first")  # a warning goes out at once
        assert pipe.read() == "first\n"
        logger.info("second")
        logger.info("third")
        assert pipe.read() == ""  # held until the next flush
        flushed = ""
        deadline = time.monotonic() + 5  # 5x the interval
        while not flushed and time.monotonic() < deadline:
            time.sleep(0.05)
            flushed = pipe.read()
        assert flushed == "second\nthird\n"
        logger.info("last")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
        handler.close()  # an orderly stop writes what is left
    assert pipe.read() == "last\n"


def test_buffered_lines_go_out_in_whole_lines_of_at_most_pipe_buf_bytes() -> None:
    lines = [b"a" * 1000 + b"\n"] * 9 + [b"b" * (PIPE_BUF + 10) + b"\n", b"c\n"]
    chunks = list(line_aligned_chunks(lines))
    assert b"".join(chunks) == b"".join(lines)
    assert all(chunk.endswith(b"\n") for chunk in chunks)
    assert [len(chunk) for chunk in chunks] == [4004, 4004, 1001, PIPE_BUF + 11, 2]


def test_configure_logging_buffers_only_when_asked() -> None:
    configure_logging("api", "INFO", flush_interval_s=0.5)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, BufferedStreamHandler)
    assert handler.interval_s == 0.5
    configure_logging("api", "INFO")
    assert not isinstance(logging.getLogger().handlers[0], BufferedStreamHandler)
    handler.close()


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
