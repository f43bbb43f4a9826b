"""The replicas knob of ``make up``: ``REPLICAS`` and ``SCALE`` checked, as ``--scale`` flags.

    python3 -m compose.scale PATTERN [--replicas N] [--scale "predictor=3 prep=2"]

prints the ``docker compose up`` flags (``--scale predictor=2 ...``; nothing when neither
is given: each service keeps its compose file's count), or one line naming the bad value
and exits 2, so that nothing starts. ``--replicas`` sets every scalable tier of the
pattern (:func:`compose.config.scalable_services`); ``--scale`` then sets single ones.
The values are checked first; then, to read the pattern's services, a compose CLI must
answer (``config`` needs no engine: :func:`compose.config.compose_command`). Where none
does, this makes sure of one as ``make up`` does (``compose/offline/ensure-docker.sh``), so
a bad value never installs anything, a good one never fails for want of what ``make up``
would have installed, and no engine is started just to read a file.
Standard library only: ``make up`` runs it with the system Python.
"""

import argparse
import re
import subprocess
import sys

from compose.config import ROOT, ComposeError, compose_command, compose_config, scalable_services

#: Brings up a Docker engine and the compose plugin where none answers (or says what to
#: install); does nothing when they answer.
ENSURE_DOCKER = ROOT / "compose" / "offline" / "ensure-docker.sh"
STDERR_FD = 2

_COUNT = re.compile(r"[1-9][0-9]{0,2}")


class ScaleError(Exception):
    """A value of REPLICAS or SCALE that cannot be used (the message says which and why)."""


def count(value: str, what: str) -> int:
    """A replica count: a whole number from 1 to 999."""
    if not _COUNT.fullmatch(value):
        raise ScaleError(f"{what}={value!r}: give a whole number of replicas, 1 or more")
    return int(value)


def parse_scale(text: str) -> dict[str, int]:
    """``"predictor=3 prep=2"`` -> ``{"predictor": 3, "prep": 2}`` (spaces or commas)."""
    counts: dict[str, int] = {}
    for item in re.split(r"[\s,]+", text.strip()):
        if not item:
            continue
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ScaleError(f'SCALE: {item!r} is not service=N (e.g. SCALE="predictor=3")')
        counts[name] = count(value, f"SCALE {name}")
    return counts


def scale_flags(pattern: str, replicas: str, scale: str) -> list[str]:
    """The ``--scale`` flags for ``replicas`` (all tiers) and ``scale`` (single ones)."""
    every = count(replicas, "REPLICAS") if replicas else None
    single = parse_scale(scale)
    if every is None and not single:
        return []
    ensure_compose_cli()
    services = scalable_services(compose_config(pattern))
    unknown = sorted(set(single) - set(services))
    if unknown:
        raise ScaleError(
            f"SCALE: {pattern} has no scalable service {', '.join(unknown)}; "
            f"choose from: {' '.join(services) or '(none: its api is the only tier)'}"
        )
    counts = dict.fromkeys(services, every) if every is not None else {}
    counts |= single
    return [flag for name, n in counts.items() for flag in ("--scale", f"{name}={n}")]


def ensure_compose_cli() -> None:
    """A compose CLI answers, as it is or by :data:`ENSURE_DOCKER`; ComposeError if not."""
    try:
        version = subprocess.run([*compose_command(), "version"], capture_output=True, check=False)
        if version.returncode == 0:
            return
    except OSError:  # no docker CLI at all
        pass
    # Its output (an install's) goes to stderr: stdout is the flags make reads.
    if subprocess.run([str(ENSURE_DOCKER)], stdout=STDERR_FD, check=False).returncode != 0:
        raise ComposeError("no Docker engine or compose plugin (see the lines above)")


def main(argv: list[str] | None = None) -> int:
    """Print the flags, or one line saying what is wrong (exit 2)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pattern")
    parser.add_argument("--replicas", default="")
    parser.add_argument("--scale", default="")
    args = parser.parse_args(argv)
    try:
        print(" ".join(scale_flags(args.pattern, args.replicas.strip(), args.scale)))
    except (ScaleError, ComposeError) as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
