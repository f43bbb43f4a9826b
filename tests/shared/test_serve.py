"""shared.kit.serve with WEB_CONCURRENCY=2: two processes on one port, one set of
metrics, JSON logs from both, and SIGTERM stops both after their requests."""

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.compose_stack import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
MAX_REQUESTS_TO_SEE_BOTH = 200


class Server:
    """``python -m shared.kit.serve tests.shared.serve_app:app`` in two processes."""

    def __init__(self, tmp_path: Path) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "HOST": "127.0.0.1",
            "PORT": self.url.rsplit(":", 1)[1],
            "WEB_CONCURRENCY": "2",
            "SERVICE_NAME": "serve-test",
            "LOG_FLUSH_INTERVAL_S": "0.2",
            "TMPDIR": str(tmp_path),
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "shared.kit.serve", "tests.shared.serve_app:app"],
            env=env,
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def wait_ready(self) -> None:
        """Until /health/ready answers 200 (the server exiting fails the test)."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.process.communicate()
            try:
                if httpx.get(f"{self.url}/health/ready").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError("the server did not become ready")

    def stop(self) -> tuple[int, list[dict]]:
        """SIGTERM; the exit code and the JSON lines it wrote."""
        self.process.send_signal(signal.SIGTERM)
        stdout, _ = self.process.communicate(timeout=60)
        return self.process.returncode, [orjson.loads(line) for line in stdout.splitlines()]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    server = Server(tmp_path)
    try:
        server.wait_ready()
        yield server
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.communicate()


def requests_counted(url: str, route: str) -> float:
    """The requests to ``route`` that /metrics counts, over every status."""
    text = httpx.get(f"{url}/metrics").text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "mlsp_http_requests"
        for sample in family.samples
        if sample.name == "mlsp_http_requests_total" and sample.labels["route"] == route
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_two_processes_share_the_port_the_metrics_and_the_shutdown(server: Server) -> None:
    pids: set[int] = set()
    sent = 0
    while len(pids) < 2 and sent < MAX_REQUESTS_TO_SEE_BOTH:
        pids.add(httpx.get(f"{server.url}/pid").json()["pid"])  # a new connection each time
        sent += 1
    assert len(pids) == 2, f"one process answered all {sent} requests"
    assert server.process.pid not in pids  # the parent only supervises
    # Whichever process answers the scrape, it counts both processes' requests.
    assert requests_counted(server.url, "/pid") == sent
    assert requests_counted(server.url, "/pid") == sent

    in_flight: list[httpx.Response] = []
    request = threading.Thread(target=lambda: in_flight.append(httpx.get(f"{server.url}/slow")))
    request.start()
    time.sleep(0.3)  # the request has arrived; now stop the server under it
    code, lines = server.stop()
    request.join()

    assert code == 0
    assert in_flight[0].status_code == 200  # drained, not cut
    assert not any(alive(pid) for pid in pids)
    finished = {line["msg"] for line in lines if line["msg"].startswith("Finished server process")}
    assert finished == {f"Finished server process [{pid}]" for pid in pids}
    assert {line["service"] for line in lines} == {"serve-test"}
