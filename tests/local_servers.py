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


@contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    """A redis-server on a free port, without persistence; yields its URL."""
    port = free_port()
    process = subprocess.Popen(
        [_binary("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        client.close()
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


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
    port = free_port()
    try:
        subprocess.run(
            [*prefix, _binary("initdb"), "-D", str(data), "-U", "test", "--auth=trust"],
            check=True,
            capture_output=True,
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories='' "
            "-c fsync=off -c max_connections=50"
        )
        subprocess.run(
            [*prefix, _binary("pg_ctl"), "-D", str(data), "-o", options,
             "-l", str(folder / "log"), "-w", "start"],
            check=True,
            capture_output=True,
        )  # fmt: skip
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
