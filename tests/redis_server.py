"""A real, throw-away ``redis-server`` for unit tests, on a free port of 127.0.0.1.

Tests of code that talks to Redis run it against the real thing, not a fake.
The server keeps nothing on disk, starts in about 0.1 s, and can be paused
(SIGSTOP: it accepts connections but never answers, like a hung Redis),
stopped and started again on the same port. Needs ``redis-server`` on the
machine (Debian: ``apt-get install redis-server``; ``.ci/run`` installs it).
"""

import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType

import redis

from tests.compose_stack import free_port


class RedisServer:
    """One redis-server process; ``url`` stays the same across stop and start."""

    def __init__(self, folder: Path, *options: str) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server is not installed: the unit tests need a real Redis "
                "(Debian: apt-get install redis-server)"
            )
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.command = [
            binary, "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(folder), *options,
        ]  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if time.monotonic() > deadline or self.process.poll() is not None:
                        raise RuntimeError("redis-server did not start") from None
                    time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        """Stop the server (resumed first if paused)."""
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def pause(self) -> None:
        """Freeze the server: connections open, nothing answered."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Unfreeze a paused server."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def client(self) -> redis.Redis:
        """A synchronous client, to look at what the code under test stored."""
        return redis.Redis.from_url(self.url)

    def __enter__(self) -> "RedisServer":
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
