"""Real Redis and PostgreSQL servers for unit tests, on free ports of 127.0.0.1.

Tests of code that talks to Redis or PostgreSQL run it against the real
thing, not a fake: a throw-away ``redis-server`` or PostgreSQL cluster in a
temporary folder, started once per test session (about 0.1 s and 2 s) and
stopped at its end. Needs ``redis-server`` and the PostgreSQL binaries
(``initdb``, ``pg_ctl``) on the machine; ``.ci/run`` installs them when missing.
As root, PostgreSQL (which refuses to run as root) runs as the ``postgres``
or ``nobody`` user.
"""

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import redis

from tests.compose_stack import free_port


def _binary(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        raise RuntimeError(
            f"{name} is not installed: the unit tests need real Redis and PostgreSQL servers "
            "(Debian: apt-get install redis-server postgresql-15)"
        )
    return found


class RedisServer:
    """One redis-server process without persistence; ``url`` stays the same across restarts.

    Besides starting and stopping, it can be paused (SIGSTOP: it keeps accepting
    connections but answers nothing, like a hung Redis) and resumed.
    """

    def __init__(self, folder: Path, *options: str) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.command = [
            _binary("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(folder), *options,
        ]  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        client = self.client()
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
        """A synchronous client, e.g. to look at what the code under test stored."""
        return redis.Redis.from_url(self.url)

    def __enter__(self) -> "RedisServer":
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


@contextmanager
def redis_server(folder: Path, *options: str) -> Iterator[str]:
    """A redis-server on a free port, without persistence; yields its URL."""
    with RedisServer(folder, *options) as server:
        yield server.url


def _as_user() -> tuple[list[str], str | None]:
    """The command prefix and owner under which PostgreSQL may run here."""
    if os.geteuid() != 0:
        return [], None
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        return ["runuser", "-u", user, "--"], user
    raise RuntimeError("running as root with neither a postgres nor a nobody user")


@contextmanager
def postgres_server() -> Iterator[str]:
    """A PostgreSQL cluster on a free port, trusting local connections; yields its URL.

    The cluster lives in its own folder under the system's temporary directory
    (pytest's are private to the user running the tests, and PostgreSQL may
    have to run as another one).
    """
    prefix, owner = _as_user()
    folder = Path(tempfile.mkdtemp(prefix="mlsp-pg-"))
    data = folder / "data"
    data.mkdir()
    if owner is not None:
        shutil.chown(folder, owner)
        shutil.chown(data, owner)
    try:
        subprocess.run(
            [*prefix, _binary("initdb"), "-D", str(data), "-U", "test", "--auth=trust"],
            check=True,
            capture_output=True,
        )
        for attempt in range(3):  # another port if the free one was taken meanwhile
            port = free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories='' "
                "-c fsync=off -c max_connections=50"
            )
            started = subprocess.run(
                [*prefix, _binary("pg_ctl"), "-D", str(data), "-o", options,
                 "-l", str(folder / "log"), "-w", "start"],
                check=attempt == 2,
                capture_output=True,
            )  # fmt: skip
            if started.returncode == 0:
                break
        yield f"postgresql://test@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, _binary("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(folder, ignore_errors=True)


def fresh_database(server_url: str, name: str) -> str:
    """Create an empty database ``name`` on the server; its URL."""
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + f"/{name}"
