"""Virtual environments the tests make for themselves from a lock file."""

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

STAMP = ".lock-sha256"


def locked_venv(path: Path, lock: Path) -> Path:
    """The Python of a venv at ``path`` holding exactly ``lock`` (hash-checked).

    Made on first use and made again when the lock changes (its sha256 is kept in
    the venv); anything already at ``path`` without that stamp is replaced. Fails
    the test with one line when the venv cannot be made (e.g. no package index).
    """
    python = path / "bin" / "python"
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()
    if python.is_file() and (path / STAMP).is_file() and (path / STAMP).read_text() == digest:
        return python
    shutil.rmtree(path, ignore_errors=True)
    for command in (
        [sys.executable, "-m", "venv", str(path)],
        [python, "-m", "pip", "install", "-q", "--require-hashes", "--no-deps", "-r", lock],
    ):
        made = subprocess.run(command, capture_output=True, text=True, check=False)
        if made.returncode != 0:
            last = (made.stderr.strip() or made.stdout.strip() or "no output").splitlines()[-1]
            pytest.fail(f"cannot make {path} from {lock.name}: {last}", pytrace=False)
    (path / STAMP).write_text(digest)
    return python
