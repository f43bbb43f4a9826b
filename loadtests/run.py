"""One load run: headless Locust on ``$PATTERN``, then the report.

    python -m loadtests.run --host http://api:8080 --out loadtests/results/web-single \\
        [--users 16] [--spawn-rate 16] [--run-time 60s] [--max-failure-pct X] [locust options]

Writes ``<out>_stats.csv`` (and Locust's other CSVs), ``<out>.html`` and the
report's ``<out>_summary.md`` / ``<out>_summary.json``. Unrecognised options go
to Locust unchanged (e.g. ``--processes 2``). Exit code: the report's verdict
when ``--max-failure-pct`` is given, otherwise Locust's own (1 if any request
failed). Locust runs in a child process, so this one stays free of gevent.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from loadtests import breakdown, report

__all__ = ["locust_command", "main"]

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
SCRAPE_SETTLE_S = 4  # two scrape intervals of compose/observe/prometheus.yml


def _parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.run", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--host", required=True, help="base URL of the pattern's api")
    parser.add_argument("--out", required=True, help="output prefix, e.g. results/web-single")
    parser.add_argument("--users", type=int, default=16, help="concurrent users (default 16)")
    parser.add_argument("--spawn-rate", type=float, default=16, help="users started per second")
    parser.add_argument("--run-time", default="60s", help="duration, e.g. 30s, 2m (default 60s)")
    parser.add_argument("--max-failure-pct", type=float, metavar="X", help="see loadtests.report")
    parser.add_argument(
        "--warmup", default="", help="a first, unrecorded run of this length (e.g. 5s)"
    )
    return parser.parse_known_args(argv)


def locust_command(
    args: argparse.Namespace, extra: Sequence[str] = (), *, out: str | None = None
) -> list[str]:
    """The Locust command line for ``args`` (the pattern comes from ``$PATTERN``).

    ``out`` overrides ``args.out`` and ``args.run_time`` is used as is, so the
    same settings serve the warm-up run and the measured one.
    """
    out = out or args.out
    return [
        *(sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary"),
        *("--host", args.host, "--users", str(args.users), "--spawn-rate", str(args.spawn_rate)),
        *("--run-time", args.run_time, "--csv", out, "--html", f"{out}.html"),
        *extra,
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    args, extra = _parse_args(argv)
    stats_csv = Path(f"{args.out}_stats.csv")
    stats_csv.parent.mkdir(parents=True, exist_ok=True)
    stats_csv.unlink(missing_ok=True)  # never report a previous run's numbers
    if args.warmup:
        warmup = argparse.Namespace(**{**vars(args), "run_time": args.warmup})
        print(f"warming up for {args.warmup} (not recorded)", file=sys.stderr, flush=True)
        subprocess.run(
            locust_command(warmup, extra, out=str(Path(tempfile.gettempdir()) / "warmup")),
            check=False,
            env={**os.environ, "PROGRESS_SECONDS": "0"},
        )
    started = time.time()
    locust_code = subprocess.run(locust_command(args, extra), check=False).returncode
    ended = time.time()
    if not stats_csv.is_file():
        return locust_code or 2
    threshold = (
        [] if args.max_failure_pct is None else ["--max-failure-pct", str(args.max_failure_pct)]
    )
    report_code = report.main([args.out, *threshold])
    prometheus = os.environ.get("PROMETHEUS_URL")
    if prometheus:  # OBSERVE=1: where the time went, once the last scrape is in
        time.sleep(SCRAPE_SETTLE_S)
        breakdown.main([prometheus, args.out, "--start", str(started), "--end", str(ended)])
    if report_code or args.max_failure_pct is not None:
        return report_code
    return locust_code


if __name__ == "__main__":
    sys.exit(main())
