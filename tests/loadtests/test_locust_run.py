"""A real headless Locust run of web-single against a fake /predict on 127.0.0.1."""

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from loadtests.report import aggregated, main, read_stats

REPO_ROOT = Path(__file__).resolve().parents[2]
USERS = 4
BATCH_SIZE = 2
KEY = "lt-key-1"


class FakePredictServer(ThreadingHTTPServer):
    """Answers ``POST /predict`` like the api services, counting the requests it got."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _PredictHandler)
        self.lock = threading.Lock()
        self.requests = 0
        self.bad_requests = 0
        self.keyed_requests = 0  # with the first of API_KEYS as Bearer

    def handle_error(self, request: object, client_address: object) -> None:
        """Locust drops its connections at shutdown; that is not worth a traceback."""


class _PredictHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: FakePredictServer

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        instances = body.get("instances", [])
        valid = self.path == "/predict" and all(len(row) == 4 for row in instances)
        with self.server.lock:
            self.server.requests += 1
            self.server.bad_requests += not valid
            self.server.keyed_requests += self.headers.get("Authorization") == f"Bearer {KEY}"
        predictions = [{"label": "setosa", "probabilities": [1.0, 0.0, 0.0]} for _ in instances]
        payload = json.dumps({"predictions": predictions}).encode()
        self.send_response(200 if valid else 422)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def fake_api() -> Iterator[FakePredictServer]:
    server = FakePredictServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_headless_run_then_report(fake_api: FakePredictServer, tmp_path: Path) -> None:
    prefix = tmp_path / "web-single"
    host = f"http://127.0.0.1:{fake_api.server_address[1]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCUST_")}
    env.update(PATTERN="web-single", BATCH_SIZE=str(BATCH_SIZE), REPEAT_SHARE="0.2")
    env["API_KEYS"] = f"{KEY},lt-key-2"  # the api's keys: Locust sends the first
    run = subprocess.run(
        [
            *(sys.executable, "-m", "locust", "-f", str(REPO_ROOT / "loadtests" / "locustfile.py")),
            # 10 s, not 3: on a busy machine the users may send nothing in the first seconds.
            *("--headless", "-H", host, "-u", str(USERS), "-r", str(USERS), "-t", "10s"),
            *("--csv", str(prefix), "--html", f"{prefix}.html", "--only-summary"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert Path(f"{prefix}.html").stat().st_size > 0

    assert main([str(prefix), "--max-failure-pct", "0"]) == 0
    rows = read_stats(f"{prefix}_stats.csv")
    assert [row.name for row in rows] == ["POST /predict", "Aggregated"]
    total = aggregated(rows)
    assert total is not None
    assert total.failures == 0
    assert fake_api.bad_requests == 0
    assert fake_api.keyed_requests == fake_api.requests
    # The CSV holds the final numbers: only requests cut off at shutdown may be missing.
    assert fake_api.requests - USERS <= total.requests <= fake_api.requests
    summary = json.loads(Path(f"{prefix}_summary.json").read_text())
    assert summary["rows"][-1]["requests"] == total.requests
    assert Path(f"{prefix}_summary.md").read_text().count("\n") == 4
