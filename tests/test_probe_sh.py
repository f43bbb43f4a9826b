"""compose/probe.sh, the containers' healthcheck, against a real HTTP server on 127.0.0.1."""

import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import REPO_ROOT
from tests.compose_stack import free_port

PROBE = REPO_ROOT / "compose" / "probe.sh"
STATUS_BY_PATH = {"/health/ready": 200, "/not-ready": 503, "/": 200}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(4)
        self.send_response(STATUS_BY_PATH.get(self.path, 404))
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def probe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PROBE), *args], capture_output=True, text=True, timeout=30, check=False
    )


@pytest.mark.parametrize(
    ("path", "healthy"),
    [("/health/ready", True), ("", True), ("/not-ready", False), ("/missing", False)],
)
def test_healthy_only_on_200(port: int, path: str, healthy: bool) -> None:
    assert (probe(f"http://127.0.0.1:{port}{path}").returncode == 0) is healthy


def test_an_unready_answer_is_named(port: int) -> None:
    result = probe(f"http://127.0.0.1:{port}/not-ready")
    assert result.returncode == 1
    assert result.stdout.startswith(
        f"probe: http://127.0.0.1:{port}/not-ready answered HTTP/1.0 503"
    )


def test_a_server_that_does_not_answer_in_time_is_unhealthy(port: int) -> None:
    url = f"http://127.0.0.1:{port}/slow"
    result = probe(url)
    assert (result.returncode, result.stdout) == (1, f"probe: no answer from {url} within 2 s\n")


def test_nothing_listening_is_unhealthy_and_says_so() -> None:
    port = free_port()
    result = probe(f"http://127.0.0.1:{port}/health/ready")
    assert (result.returncode, result.stdout) == (
        1,
        f"probe: nothing answers on 127.0.0.1:{port}\n",
    )


def test_no_url_says_how_to_call_it() -> None:
    result = probe()
    assert result.returncode != 0
    assert "usage: probe http://127.0.0.1:PORT/PATH" in result.stderr
