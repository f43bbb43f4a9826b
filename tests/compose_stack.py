"""Drive a pattern's docker compose stack from a test, as a user would.

    with ComposeStack("web-single") as stack:
        stack.post("/predict", json={...})

Each stack runs under its own project name and a free port on 127.0.0.1, so
an e2e run never collides with a stack a user has up. Everything goes through
``compose/compose.sh``, the same entry point as ``make up``.
"""

import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import orjson

from tests.readme_examples import readme_example_problems

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
REPO_ROOT = Path(__file__).resolve().parents[1]
COMPOSE_SH = REPO_ROOT / "compose" / "compose.sh"
RESULTS = REPO_ROOT / "loadtests" / "results"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def container_metrics(container: str, port: int = 8080) -> str:
    """The ``/metrics`` page of one container, read inside it (``docker exec``), so its
    port need not be published."""
    script = (
        "import urllib.request as u; print(u.urlopen("
        f"'http://127.0.0.1:{port}/metrics', timeout=5).read().decode())"
    )
    result = subprocess.run(
        ["docker", "exec", container, "python", "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout


class ComposeStack:
    """One pattern's stack, brought up on enter and removed (with volumes) on exit."""

    def __init__(self, pattern: str, *, edge: bool = False, **env: str) -> None:
        """``edge``: with HAProxy in front of the api (compose/edge.yaml, ``make up EDGE=1``),
        which then has the published port; a project of its own."""
        self.pattern = pattern
        self.port = free_port()
        tag = os.environ.get("MLSP_TAG", "dev")
        # Checkouts building under another MLSP_TAG get their own projects too.
        self.project = (
            f"mlsp-e2e-{pattern}" + ("-edge" if edge else "") + ("" if tag == "dev" else f"-{tag}")
        )
        self.env = {
            **os.environ,
            "API_PORT": str(self.port),
            "COMPOSE_PROJECT_NAME": self.project,
            **env,
        }
        self.base_url = f"http://127.0.0.1:{self.port}"
        in_playground = REPO_ROOT / "patterns" / pattern / "compose.yaml"
        # In a starter ejected by `make starter`, the pattern's compose file is at the root.
        self.compose_file = in_playground if in_playground.is_file() else REPO_ROOT / "compose.yaml"
        self.files = [self.compose_file] + ([REPO_ROOT / "compose" / "edge.yaml"] if edge else [])
        self.http = httpx.Client(base_url=self.base_url, timeout=10.0)

    @contextmanager
    def overridden(self, **env: str) -> Iterator[None]:
        """Run the block's compose commands with ``env`` added to the stack's environment.

        ``with stack.overridden(EXTRA_WORK_MS="100"): stack.compose("up", "-d", "worker")``
        recreates the worker with that setting; a later ``up`` outside the block puts the
        stack's own setting back.
        """
        saved = dict(self.env)
        self.env.update(env)
        try:
            yield
        finally:
            self.env = saved

    def compose(self, *args: str, check: bool = True, timeout: float = 900) -> str:
        """Run ``docker compose <args>`` on this stack; returns stdout."""
        result = subprocess.run(
            [str(COMPOSE_SH), *(arg for f in self.files for arg in ("-f", str(f))), *args],
            cwd=REPO_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"docker compose {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
            )
        return result.stdout

    def up(self) -> None:
        """Build and start the stack; returns when every service is healthy."""
        try:
            self.compose("up", "--build", "--wait", "--remove-orphans")
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n--- logs ---\n{self.logs()[-6000:]}") from exc

    def down(self) -> None:
        """Remove the stack's containers (of every profile), network and volumes."""
        self.compose("--profile", "*", "down", "--volumes", "--remove-orphans", check=False)

    def logs(self, *services: str) -> str:
        """The services' logs so far (all services when none named), without ANSI codes."""
        raw = self.compose("logs", "--no-color", "--no-log-prefix", *services, check=False)
        return ANSI_ESCAPE.sub("", raw)  # compose 2.26 writes erase-line codes even with --no-color

    def log_lines(self, service: str) -> list[dict[str, Any]]:
        """The JSON log lines of ``service`` so far, parsed."""
        return [
            orjson.loads(line) for line in self.logs(service).splitlines() if line.startswith("{")
        ]

    def wait_for_log(self, service: str, text: str, timeout_s: float = 30) -> dict[str, Any]:
        """The first JSON log line of ``service`` whose message contains ``text``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in self.log_lines(service):
                if text in str(line.get("msg", "")):
                    return line
            time.sleep(0.5)
        raise AssertionError(f"no log line of {service} says {text!r} within {timeout_s} s")

    def traced(self, service: str, request_id: str, timeout_s: float = 5) -> list[str]:
        """The messages ``service`` logged for the request with id ``request_id``, once
        there are any (servers write their lines every ``LOG_FLUSH_INTERVAL_S``)."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = [
                line["msg"]
                for line in self.log_lines(service)
                if line.get("request_id") == request_id
            ]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    def containers(self, service: str) -> list[str]:
        """The ids of ``service``'s running containers (one per replica), in a stable order."""
        return sorted(self.compose("ps", "-q", service).split())

    def metrics_of(self, container: str, port: int = 8080) -> str:
        """The ``/metrics`` page of one container (its port need not be published)."""
        return container_metrics(container, port)

    @contextmanager
    def paused(self, *services: str) -> Iterator[None]:
        """``services`` frozen (``docker compose pause``) for the block: too slow to answer."""
        self.compose("pause", *services)
        try:
            yield
        finally:
            self.compose("unpause", *services)

    @contextmanager
    def stopped(self, *services: str) -> Iterator[None]:
        """``services`` stopped for the block (then started again): down."""
        self.compose("stop", *services)
        try:
            yield
        finally:
            self.compose("start", *services)

    def run(self, *argv: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        """``argv`` run from the repository root with the stack's environment, as a user's
        make target would; its output captured, its exit status left to the caller."""
        return subprocess.run(
            argv, cwd=REPO_ROOT, env=self.env, capture_output=True, text=True,
            timeout=timeout_s, check=False,
        )  # fmt: skip

    def readme_example_problems(self, readme: Path | None = None) -> list[str]:
        """How this stack's answers differ from the marked examples of ``readme`` (default: the
        README beside the pattern's compose file); empty when every example answers as quoted."""
        readme = readme or self.compose_file.parent / "README.md"
        return readme_example_problems(readme, self.base_url)

    def locust_smoke(
        self, seconds: int = 5, users: int = 4, **env: str
    ) -> dict[str, dict[str, Any]]:
        """A short headless Locust run on the stack's network; its summary rows by name
        (``Aggregated`` among them), e.g. ``locust_smoke(REPEAT_SHARE="0.5")``.

        Fails unless every request succeeded (``--max-failure-pct 0``).
        """
        out = f"e2e-{self.pattern}-smoke"
        options = [item for key, value in env.items() for item in ("-e", f"{key}={value}")]
        self.compose(
            "run", "--rm", "-e", f"PATTERN={self.pattern}", *options, "loadtest",
            "--users", str(users), "--spawn-rate", str(users), "--run-time", f"{seconds}s",
            "--host", "http://api:8080", "--out", f"/results/{out}", "--max-failure-pct", "0",
        )  # fmt: skip
        summary = orjson.loads((RESULTS / f"{out}_summary.json").read_bytes())
        return {row["name"]: row for row in summary["rows"]}

    def wait_for(self, condition: Any, what: str, timeout_s: float = 30) -> None:
        """Poll ``condition()`` until it is truthy."""
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
            time.sleep(0.5)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """An HTTP request to the pattern's public api."""
        return self.http.request(method, path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        """GET on the public api."""
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        """POST on the public api."""
        return self.request("POST", path, **kwargs)

    def wait_ready(self, path: str = "/health/ready", timeout_s: float = 60) -> None:
        """Poll the readiness endpoint until it answers 200."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if self.get(path).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.pattern} not ready after {timeout_s} s")
            time.sleep(0.5)

    def __enter__(self) -> "ComposeStack":
        try:
            self.up()
        except BaseException:  # __exit__ will not run: leave no half-started stack behind
            self.http.close()
            self.down()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.http.close()
        self.down()
