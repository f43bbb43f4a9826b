"""A second checkout of the repository finds the first one's stack and data.

Two ``git clone``s of this checkout (of its last commit), one after the other, on the
patterns that keep rows in PostgreSQL: clone 1 brings the stack up, adds rows and takes
it down without wiping; clone 2 (no .mlsp/ of its own) brings the same compose project up
and finds the rows. Then the two cases the passwords kept per project cannot solve must
fail with one line a user can act on and lose nothing: the kept passwords lost (another
state folder), and a wrong POSTGRES_PASSWORD given by hand.
"""

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.compose_stack import REPO_ROOT, free_port

pytestmark = pytest.mark.e2e

TAG = os.environ.get("MLSP_TAG", "dev")
# Rows a user added, and how to count them, per pattern.
ADD_ROWS = {
    "batch": ["batch-load", "ROWS=25"],
    "data-cache": None,  # the seed's 1797 items, plus one written by hand below
}
MARKER_ITEM = "INSERT INTO items (id, image, label) VALUES (900001, 'x', 'mine')"
COUNT_ROWS = {
    "batch": "SELECT count(*) FROM batch_inputs",
    "data-cache": "SELECT count(*) FROM items",
}


def image_choice() -> dict[str, str]:
    """This checkout's base images (.mlsp/images.env), so the clones need not choose again."""
    remembered = REPO_ROOT / ".mlsp" / "images.env"
    if not remembered.is_file():
        return {}
    lines = remembered.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


class Clone:
    """A ``git clone`` of this checkout, driven with make as a user would."""

    def __init__(self, path: Path, pattern: str, env: dict[str, str]) -> None:
        subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(path)], check=True)
        self.path, self.pattern, self.env = path, pattern, env

    def make(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """``make ARGS PATTERN=<pattern>`` in the clone; the finished process."""
        return subprocess.run(
            ["make", "--no-print-directory", *args, f"PATTERN={self.pattern}"],
            cwd=self.path,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )

    def compose(self, *args: str) -> str:
        """``compose/compose.sh -f <the pattern's compose file> ARGS``; its stdout."""
        result = subprocess.run(
            ["./compose/compose.sh", "-f", f"patterns/{self.pattern}/compose.yaml", *args],
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        return result.stdout

    def sql(self, statement: str) -> str:
        """One statement through psql in the postgres container (local socket); its output."""
        return self.compose(
            "exec", "-T", "postgres", "psql", "-h", "/var/run/postgresql", "-U", "mlsp",
            "-d", "mlsp", "-tA", "-v", "ON_ERROR_STOP=1", "-c", statement,
        ).strip()  # fmt: skip


def up(clone: Clone, **env: str) -> None:
    result = clone.make("up", **env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.fixture
def project(pattern: str) -> Iterator[str]:
    """A compose project of this test alone; its containers and volumes removed at the end."""
    name = f"mlsp-e2e-second-{pattern}-{TAG}"
    yield name
    subprocess.run(
        ["docker", "compose", "-p", name, "-f", f"patterns/{pattern}/compose.yaml",
         "--profile", "*", "down", "--volumes", "--remove-orphans"],
        cwd=REPO_ROOT,
        env={**os.environ, "REDIS_PASSWORD": "-", "POSTGRES_PASSWORD": "-"},
        capture_output=True,
        check=False,
    )  # fmt: skip


@pytest.mark.parametrize("pattern", ["batch", "data-cache"])
def test_a_second_clone_finds_the_rows_of_the_first(
    pattern: str, project: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        **image_choice(),
        "COMPOSE_PROJECT_NAME": project,
        "API_PORT": str(free_port()),
        "XDG_STATE_HOME": str(tmp_path / "state"),  # the user's, shared by both clones
    }
    for name in ("REDIS_PASSWORD", "POSTGRES_PASSWORD", "MAKEFLAGS", "MFLAGS"):
        env.pop(name, None)

    first = Clone(tmp_path / "first", pattern, env)
    up(first)
    if ADD_ROWS[pattern]:
        added = first.make(*ADD_ROWS[pattern])
        assert added.returncode == 0, added.stdout[-2000:] + added.stderr[-2000:]
    else:
        first.sql(MARKER_ITEM)
    rows = first.sql(COUNT_ROWS[pattern])
    assert int(rows) > 0
    assert first.make("down").returncode == 0  # no WIPE: the data stays

    second = Clone(tmp_path / "second", pattern, env)
    assert not (second.path / ".mlsp").exists()
    up(second)
    assert second.sql(COUNT_ROWS[pattern]) == rows

    # The kept passwords lost: a start stops at once, with one line and no traceback.
    lost = Clone(tmp_path / "third", pattern, {**env, "XDG_STATE_HOME": str(tmp_path / "gone")})
    refused = lost.make("up")
    assert refused.returncode != 0
    assert f"{project}_postgres-data was made with a password" in refused.stderr
    assert f"make down PATTERN={pattern} WIPE=1" in refused.stderr
    assert "Traceback" not in refused.stdout + refused.stderr

    # A wrong password given by hand: the one-shot that connects first says what to do.
    wrong = second.make("up", POSTGRES_PASSWORD="not-the-one")
    assert wrong.returncode != 0
    one_shot = "migrate" if pattern == "batch" else "seed"
    logs = second.compose("logs", "--no-color", "--no-log-prefix", one_shot)
    assert "PostgreSQL refused the password" in logs
    assert "Traceback" not in logs

    up(second)  # with the project's password again
    assert second.sql(COUNT_ROWS[pattern]) == rows
    wiped = second.make("down", WIPE="1")
    assert wiped.returncode == 0, wiped.stderr[-2000:]
    assert not (tmp_path / "state" / "mlsp" / project).exists()  # forgotten with the data
