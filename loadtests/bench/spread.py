"""How ``make load`` spreads a tier's calls over its replicas: ``make spread``.

    python -m loadtests.bench.spread sync --scale predictor=3 [--users 16] [--duration 30s]

Brings the pattern up with ``make up SCALE=...``, reads each replica's inference calls
from its own ``/metrics`` (``docker exec``: internal services publish no port), runs
``make load``, reads them again, and writes ``loadtests/reports/spread.md``: each
replica's calls and share, and whether every share is within ``--within`` (20%) of an
even split (exit 1 when one is not). The stack is left up (``make down`` removes it).
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

from loadtests.measured import load_average, write_report
from tests.compose_stack import container_metrics
from tests.metrics_text import infer_calls

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "loadtests" / "reports" / "spread.md"


def one_tier(text: str) -> tuple[str, int]:
    """``"predictor=3"`` -> ``("predictor", 3)`` (``make up`` checks the service)."""
    service, _, count = text.partition("=")
    if not service or not count.isdigit() or int(count) < 2:
        raise argparse.ArgumentTypeError(f"{text!r}: give one tier and 2 or more replicas")
    return service, int(count)


def make(*args: str) -> None:
    """``make <args>`` in the checkout; raises when it fails."""
    subprocess.run(["make", "--no-print-directory", *args], cwd=ROOT, check=True)


def replicas(pattern: str, service: str) -> list[str]:
    """The ids of ``service``'s running containers, in a stable order."""
    ps = subprocess.run(
        ["./compose/compose.sh", "-f", f"patterns/{pattern}/compose.yaml", "ps", "-q", service],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return sorted(ps.stdout.split())


def calls(container: str) -> float:
    """The inference calls one replica has answered, from its own ``/metrics``."""
    return infer_calls(container_metrics(container))


def shares(counts: list[float]) -> list[float]:
    """Each count's share of their sum."""
    total = sum(counts)
    return [count / total if total else 0.0 for count in counts]


def uneven(counts: list[float], within: float) -> list[int]:
    """The indexes of the counts further than ``within`` (a fraction) from an even split."""
    even = sum(counts) / len(counts)
    return [i for i, count in enumerate(counts) if abs(count - even) > within * even]


def markdown(pattern: str, service: str, counts: list[float], within: float, settings: str) -> str:
    """The report: a row per replica, and the verdict."""
    off = uneven(counts, within)
    even = 1 / len(counts)
    rows = [
        f"| {i + 1} | {count:.0f} | {share:.1%} | {share / even - 1:+.1%} |"
        for i, (count, share) in enumerate(zip(counts, shares(counts), strict=True))
    ]
    verdict = (
        f"Every replica's share is within {within:.0%} of an even split ({even:.1%})."
        if not off
        else f"Replicas {', '.join(str(i + 1) for i in off)} are further than {within:.0%} "
        f"from an even split ({even:.1%})."
    )
    return "\n".join(
        [
            "# Calls spread over replicas",
            "",
            f"`make load PATTERN={pattern}` with {len(counts)} replicas of {service}: the "
            "inference calls each replica answered during the load, read from its own "
            "`/metrics` before and after (the api spreads its calls itself: gRPC "
            "`round_robin` over every address DNS gives for the name, see "
            "docs/reliability.md).",
            "",
            f"Settings: {settings}.",
            "",
            "| replica | calls | share | vs even |",
            "|---:|---:|---:|---:|",
            *rows,
            "",
            verdict,
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Up, count, load, count, report; 1 when a share is off."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pattern")
    parser.add_argument(
        "--scale", type=one_tier, default="predictor=3", help='one tier: "predictor=3"'
    )
    parser.add_argument("--users", default="16")
    parser.add_argument("--duration", default="30s")
    parser.add_argument("--within", type=float, default=0.2)
    parser.add_argument("--out", type=Path, default=REPORT)
    args = parser.parse_args(argv)
    service, count = args.scale
    scale = f"SCALE={service}={count}"
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    make("up", f"PATTERN={args.pattern}", scale)
    containers = replicas(args.pattern, service)
    before = [calls(c) for c in containers]
    load_before = load_average()
    make(
        "load",
        f"PATTERN={args.pattern}",
        scale,
        f"USERS={args.users}",
        f"DURATION={args.duration}",
        f"OUT=spread-{args.pattern}",
    )
    counts = [calls(c) - b for c, b in zip(containers, before, strict=True)]
    settings = (
        f"`python -m loadtests.bench.spread {args.pattern} --scale {service}={count}` "
        "(`make spread`) "
        f"on {started}: `make load` with {args.users} users for {args.duration}, the "
        f"compose files' other defaults; load average {load_before} before the load and "
        f"{load_average()} after, on a 2-core machine shared with other work"
    )
    text = markdown(args.pattern, service, counts, args.within, settings)
    write_report(args.out, text)
    return 1 if uneven(counts, args.within) else 0


if __name__ == "__main__":
    sys.exit(main())
