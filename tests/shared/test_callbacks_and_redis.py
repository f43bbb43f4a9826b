"""Callbacks (allow list, delivery, only the final outcome) and Redis error mapping."""

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest
import redis
from rq import Callback, Queue, Retry

from shared.jobs.callbacks import CallbackSettings, check_callback_url, deliver
from shared.jobs.worker import LiveWorker, WorkerSettings
from shared.kit.errors import DependencyTimeout, DependencyUnavailable, InvalidInput
from shared.stores.redis_client import RedisSettings, connect_async, redis_check, redis_errors
from tests.compose_stack import free_port

ALLOWED = frozenset({"receiver"})


class Receiver:
    """An HTTP server on 127.0.0.1 that records the JSON bodies POSTed to it."""

    def __init__(self, status: int = 204) -> None:
        self.bodies: list[dict] = []
        self.headers: list[dict[str, str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                receiver.bodies.append(orjson.loads(self.rfile.read(length)))
                receiver.headers.append({k.lower(): v for k, v in self.headers.items()})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/callbacks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (42, "must be a URL string"),
        ("ftp://receiver/x", "must be an http:// or https:// URL"),
        ("http:///x", "must be an http:// or https:// URL"),
        ("http://evil.example/x", "host 'evil.example' is not allowed"),
        ("http://169.254.169.254/latest", "is not allowed"),
    ],
)
def test_callback_urls_off_the_allow_list_are_refused(url: object, says: str) -> None:
    with pytest.raises(InvalidInput, match=says) as refused:
        check_callback_url(url, ALLOWED)
    assert refused.value.field == "callback_url"


def test_callbacks_are_refused_when_disabled() -> None:
    with pytest.raises(InvalidInput, match="callbacks are disabled"):
        check_callback_url("http://receiver/x", frozenset())
    assert check_callback_url("https://Receiver:8443/x", ALLOWED) == "https://Receiver:8443/x"
    assert CallbackSettings(callback_allowed_hosts=" a, B ,").allowed_hosts == {"a", "b"}


def test_delivery_retries_then_gives_up_without_raising() -> None:
    settings = CallbackSettings(callback_timeout_s=0.2, callback_attempts=2)
    closed = f"http://127.0.0.1:{free_port()}/callbacks"
    assert deliver(closed, {"job_id": "j"}, settings) is False


def test_a_non_2xx_answer_is_not_a_delivery() -> None:
    refusing = Receiver(status=500)
    try:
        settings = CallbackSettings(callback_timeout_s=1, callback_attempts=2)
        assert deliver(refusing.url, {"job_id": "j"}, settings) is False
        assert len(refusing.bodies) == 2
    finally:
        refusing.server.shutdown()


def test_the_receiver_gets_the_first_callback_key_as_bearer(receiver: Receiver) -> None:
    keyless = CallbackSettings(callback_timeout_s=1)
    keyed = CallbackSettings(callback_timeout_s=1, callback_api_key="cb-key-1, cb-key-2")
    assert deliver(receiver.url, {"job_id": "a"}, keyless) is True
    assert deliver(receiver.url, {"job_id": "b"}, keyed) is True
    assert "authorization" not in receiver.headers[0]
    assert receiver.headers[1]["authorization"] == "Bearer cb-key-1"


def test_the_final_outcome_is_delivered_once(redis_url: str, receiver: Receiver) -> None:
    client = redis.Redis.from_url(redis_url)
    queue = Queue("test", connection=client)
    callbacks = {
        "on_success": Callback("shared.jobs.callbacks.on_success"),
        "on_failure": Callback("shared.jobs.callbacks.on_failure"),
    }
    ok = queue.enqueue(
        "tests.shared.jobfuncs.add", 1, 2, meta={"callback_url": receiver.url, "request_id": "r1"},
        **callbacks,
    )  # fmt: skip
    bad = queue.enqueue(
        "tests.shared.jobfuncs.explode", "nope", meta={"callback_url": receiver.url},
        retry=Retry(max=1), **callbacks,
    )  # fmt: skip
    silent = queue.enqueue("tests.shared.jobfuncs.add", 5, 5, **callbacks)
    LiveWorker(["test"], connection=client, name="w", settings=WorkerSettings()).work(burst=True)
    by_job = {body["job_id"]: body for body in receiver.bodies}
    assert len(receiver.bodies) == 2  # the failure's retry sent nothing; no URL, no callback
    assert by_job[ok.id]["status"] == "finished"
    assert by_job[ok.id]["result"] == 3
    assert by_job[ok.id]["ended_at"].endswith("Z")
    assert by_job[bad.id]["status"] == "failed"
    assert by_job[bad.id]["error"] == {"code": "job_error", "message": "ValueError: nope"}
    assert silent.id not in by_job
    assert receiver.headers[0]["x-request-id"] == "r1"


def test_redis_failures_become_answers_a_client_can_act_on() -> None:
    with pytest.raises(DependencyUnavailable) as down, redis_errors("queueing", retry_after_s=3):
        raise redis.ConnectionError("refused")
    assert down.value.headers == {"Retry-After": "3"}
    with pytest.raises(DependencyTimeout), redis_errors("queueing"):
        raise redis.TimeoutError("slow")
    with pytest.raises(DependencyUnavailable, match="refused the command"), redis_errors("x"):
        raise redis.ResponseError("OOM command not allowed when used memory > 'maxmemory'")


def test_redis_check_reports_a_down_redis(redis_url: str) -> None:
    assert asyncio.run(redis_check(connect_async(RedisSettings(redis_url=redis_url)))()) is None
    down = connect_async(RedisSettings(redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    reason = asyncio.run(redis_check(down)())
    assert reason is not None
    assert reason.startswith("Redis: ConnectionError")


def test_redis_url_is_required() -> None:
    with pytest.raises(ValueError, match="redis_url"):
        RedisSettings()
