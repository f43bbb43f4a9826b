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

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
REPO_ROOT = Path(__file__).resolve().parents[1]
COMPOSE_SH = REPO_ROOT / "compose" / "compose.sh"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ComposeStack:
    """One pattern's stack, brought up on enter and removed (with volumes) on exit."""

    def __init__(self, pattern: str, **env: str) -> None:
        self.pattern = pattern
        self.port = free_port()
        # Another checkout building with its own MLSP_TAG gets its own projects too.
        tag = os.environ.get("MLSP_TAG", "dev")
        self.project = f"mlsp-e2e-{pattern}" + ("" if tag == "dev" else f"-{tag}")
        self.env = {
            **os.environ,
            "API_PORT": str(self.port),
            "COMPOSE_PROJECT_NAME": self.project,
            **env,
        }
        self.base_url = f"http://127.0.0.1:{self.port}"
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
            [str(COMPOSE_SH), "-f", f"patterns/{self.pattern}/compose.yaml", *args],
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
        """Remove the stack's containers, network and volumes."""
        self.compose("down", "--volumes", "--remove-orphans", check=False)

    def logs(self, *services: str) -> str:
        """The services' logs so far (all services when none named), without ANSI codes."""
        raw = self.compose("logs", "--no-color", "--no-log-prefix", *services, check=False)
        return ANSI_ESCAPE.sub("", raw)  # compose 2.26 writes erase-line codes even with --no-color

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
        self.up()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.http.close()
        self.down()
