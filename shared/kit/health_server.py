"""Health and metrics over HTTP for processes that serve no HTTP themselves.

Queue workers and schedulers spend their time in a job loop; this runs a
small standard-library HTTP server in a daemon thread beside it, with the same
endpoints and answers as every HTTP service (:mod:`shared.kit.health`):
``/health/live``, ``/health/ready`` (503 with the failing checks' reasons) and
``/metrics``. So the house healthcheck, ``probe
http://127.0.0.1:8080/health/ready`` (compose/probe.sh), works for them unchanged.
"""

import logging
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger("shared.kit.health_server")

# A synchronous check: None when fine, else a short reason (an exception also counts as a reason).
SyncCheck = Callable[[], str | None]


def failures(checks: Mapping[str, SyncCheck]) -> dict[str, str]:
    """The reasons of the checks that fail now, by name (empty when ready)."""
    reasons = {}
    for name, check in checks.items():
        try:
            reason = check()
        except Exception as exc:  # a failing check is a reason, not a crash
            reason = f"{type(exc).__name__}: {exc}"
        if reason:
            reasons[name] = reason
    return reasons


def _handler(checks: Mapping[str, SyncCheck]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/health/live":
                self._send(200, orjson.dumps({"status": "alive"}))
            elif self.path == "/health/ready":
                reasons = failures(checks)
                if reasons:
                    body = orjson.dumps({"status": "not ready", "checks": reasons})
                    self._send(503, body, {"Retry-After": "1"})
                else:
                    self._send(200, orjson.dumps({"status": "ready"}))
            elif self.path == "/metrics":
                self._send(200, generate_latest(), content_type=CONTENT_TYPE_LATEST)
            else:
                error = {"code": "not_found", "message": "no such path"}
                self._send(404, orjson.dumps({"error": error}))

        def _send(
            self,
            status: int,
            body: bytes,
            headers: dict[str, str] | None = None,
            content_type: str = "application/json",
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug(format, *args)

    return Handler


def start_health_server(
    checks: Mapping[str, SyncCheck], port: int, host: str = "0.0.0.0"
) -> ThreadingHTTPServer:
    """Serve health and metrics on ``host:port`` from a daemon thread; returns the server."""
    server = ThreadingHTTPServer((host, port), _handler(checks))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="health-server", daemon=True)
    thread.start()
    log.info("health and metrics on port %d", server.server_address[1])
    return server
