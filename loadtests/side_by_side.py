"""Several ``make load`` runs of one run side by side in one markdown table.

    python -m loadtests.side_by_side --title "data-cache: the api's PostgreSQL pool" \\
        --settings "16 users, 30 s" --load "8.1 / 7.9" \\
        "main (one connection)=loadtests/results/pool/data-cache-before" \\
        "pool of 4=loadtests/results/pool/data-cache-4" > loadtests/reports/pool.md

Each ``label=prefix`` names a Locust run (``<prefix>_stats.csv``, as ``make load
OUT=...`` writes it); the table has each run's aggregated requests/s, failures
and latency percentiles, and its requests/s as a ratio of the first run's.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from loadtests.report import StatsRow, read_stats


def aggregated(prefix: str) -> StatsRow:
    """The ``Aggregated`` row of the run at ``prefix``."""
    rows = read_stats(f"{prefix}_stats.csv")
    return next(row for row in rows if row.name == "Aggregated")


def markdown(title: str, settings: str, load: str, runs: list[tuple[str, StatsRow]]) -> str:
    """The report: one line per run, requests/s relative to the first."""
    first = runs[0][1].rps or float("nan")
    lines = [
        f"# {title}",
        "",
        f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Settings: {settings}.",
        f"Load average (1 min) at each run: {load}. The machine (2 cores) is shared: "
        "compare the rows with each other, not with other reports.",
        "",
        "| run | requests/s | vs first | failures | p50 ms | p95 ms | p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, row in runs:
        lines.append(
            f"| {label} | {row.rps:.1f} | {row.rps / first:.2f} | {row.failures} "
            f"| {row.p50_ms} | {row.p95_ms} | {row.p99_ms} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table of the runs given."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--title", required=True)
    parser.add_argument("--settings", required=True, help="how the runs were made")
    parser.add_argument("--load", required=True, help="load averages during the runs")
    parser.add_argument("runs", nargs="+", help="label=prefix of a Locust run")
    args = parser.parse_args(argv)
    runs = [(label, aggregated(prefix)) for label, prefix in (r.split("=", 1) for r in args.runs)]
    sys.stdout.write(markdown(args.title, args.settings, args.load, runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
