"""The lock files of compose/requirements: compile them, and tell when one is stale.

    python3 compose/locks.py compile [--upgrade] [--uv PATH]   # make lock

Each ``<name>.in`` that something installs has a ``<name>.lock`` beside it: every
package of that environment pinned with its sha256 hashes, compiled by uv for the
images' platform (Linux x86_64, Python 3.11) wherever ``make lock`` runs. A lock's
first line records the sha256 of its inputs (the ``.in`` file and every file it
``-r`` includes), so a stale lock is found with no network (tests/test_locks.py).
Standard library only: ``make lock`` runs it with the uv of the dev venv.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
from pathlib import Path

REQUIREMENTS = Path(__file__).resolve().parent / "requirements"
# The inputs that get a lock, and what installs each. The other .in files are only
# included (-r) by these.
LOCKED = {
    "codegen": "compose/Dockerfile, stage stubs (generates the gRPC stubs)",
    "serve": "compose/Dockerfile, stage base (every serving image)",
    "prep": "compose/Dockerfile, stage prep-base (prep-pred's prep)",
    "export": "compose/Dockerfile, stage model-export (on top of base)",
    "load": "compose/Dockerfile, stage loadtest (on top of base)",
    "image": "patterns/data-cache/Dockerfile (on top of base or model-export)",
    "dev": "the host venv of make test (the Makefile's $(VENV)/.installed)",
    "kubectl": "the host venv, when no kubectl is on PATH",
    "interop": "the tritonclient interop venv (.venv-interop, made by the tests)",
}
# Every other lock is compiled with the dev lock as constraints, so that a package has
# one version in all of them (an image's layers install locks on top of each other).
# interop lives apart on purpose (see interop.in).
DEV = "dev"
APART = {"interop"}
PLATFORM = ["--python-version", "3.11", "--python-platform", "x86_64-manylinux_2_28"]
DIGEST_LINE = "# inputs-sha256: {digest} (the .in file and what it includes; make lock writes it)\n"
DIGEST = re.compile(r"\A# inputs-sha256: ([0-9a-f]{64})[^\n]*\n")
INCLUDE = re.compile(r"^\s*-r\s+(\S+)", re.M)
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)", re.M)


def normalize(name: str) -> str:
    """A package name as PEP 503 compares it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def included(source: Path) -> list[Path]:
    """``source`` and every file it ``-r`` includes, recursively, each once, in order."""
    found: list[Path] = []
    pending = [source]
    while pending:
        path = pending.pop(0)
        if path in found:
            continue
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing (an input or an -r include)")
        found.append(path)
        pending += [path.parent / rel for rel in INCLUDE.findall(path.read_text())]
    return found


def inputs_digest(source: Path) -> str:
    """The sha256 of an input and what it includes: file names and contents."""
    digest = hashlib.sha256()
    for path in included(source):
        digest.update(f"{path.name}\n".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def pins(text: str) -> dict[str, str]:
    """``name==version`` lines of a requirements text, by normalized name (extras dropped)."""
    return {normalize(name): version for name, version in PIN.findall(text)}


def input_pins(source: Path) -> dict[str, str]:
    """The exact pins of an input and of every file it includes."""
    found: dict[str, str] = {}
    for path in included(source):
        found |= pins(path.read_text())
    return found


def lock_of(name: str, requirements: Path = REQUIREMENTS) -> Path:
    """The lock file of input ``name``."""
    return requirements / f"{name}.lock"


def lock_problems(name: str, requirements: Path = REQUIREMENTS) -> list[str]:
    """What is wrong with one lock: missing, compiled from other inputs, or off a pin."""
    source, lock = requirements / f"{name}.in", lock_of(name, requirements)
    if not lock.is_file():
        return [f"{lock.name} is missing"]
    text = lock.read_text()
    recorded = DIGEST.match(text)
    if recorded is None or recorded.group(1) != inputs_digest(source):
        return [f"{lock.name} is stale ({source.name} or what it includes changed)"]
    locked = pins(text)
    return [
        f"{lock.name} has {package}=={locked.get(package, 'nothing')}, {source.name} pins {version}"
        for package, version in sorted(input_pins(source).items())
        if locked.get(package) != version
    ]


def disagreements(requirements: Path = REQUIREMENTS) -> list[str]:
    """Packages that the locks (but the ones apart) pin at different versions."""
    seen: dict[str, tuple[str, str]] = {}
    found = []
    for name in sorted(set(LOCKED) - APART):
        lock = lock_of(name, requirements)
        if not lock.is_file():
            continue
        for package, version in pins(lock.read_text()).items():
            first = seen.setdefault(package, (lock.name, version))
            if first[1] != version:
                found.append(f"{first[0]} has {package}=={first[1]}, {lock.name} {version}")
    return found


def check(requirements: Path = REQUIREMENTS) -> list[str]:
    """Every problem of every lock; empty when all are fresh and agree."""
    problems = [p for name in sorted(LOCKED) for p in lock_problems(name, requirements)]
    return problems + disagreements(requirements)


def compile_command(name: str, uv: str, upgrade: bool = False) -> list[str]:
    """The uv command that compiles one lock, with paths relative to the repository root."""
    folder = REQUIREMENTS.relative_to(REQUIREMENTS.parents[1]).as_posix()
    command = [uv, "pip", "compile", f"{folder}/{name}.in", "-o", f"{folder}/{name}.lock"]
    command += ["--generate-hashes", *PLATFORM, "--custom-compile-command", "make lock", "--quiet"]
    if name != DEV and name not in APART:
        command += ["--constraint", f"{folder}/{DEV}.lock"]
    return command + (["--upgrade"] if upgrade else [])


def compile_locks(uv: str = "uv", upgrade: bool = False) -> None:
    """Compile every lock (the dev lock first: the others take it as constraints)."""
    for name in sorted(LOCKED, key=lambda n: (n != DEV, n)):
        subprocess.run(compile_command(name, uv, upgrade), cwd=REQUIREMENTS.parents[1], check=True)
        stamp(name)


def stamp(name: str, requirements: Path = REQUIREMENTS) -> None:
    """Record in a lock's first line the digest of the inputs it was compiled from."""
    lock = lock_of(name, requirements)
    digest = inputs_digest(requirements / f"{name}.in")
    lock.write_text(DIGEST_LINE.format(digest=digest) + DIGEST.sub("", lock.read_text()))


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    compile_parser = commands.add_parser("compile", help="compile every lock (make lock)")
    compile_parser.add_argument("--uv", default="uv", help="the uv executable")
    compile_parser.add_argument("--upgrade", action="store_true", help="newest allowed versions")
    args = parser.parse_args(argv)
    compile_locks(args.uv, args.upgrade)
    return 0


if __name__ == "__main__":
    sys.exit(main())
