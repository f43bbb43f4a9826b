"""A model version rolled out while ``make load`` runs: sync's replicas, web-single's restart.

``python -m loadtests.bench.rollout_locust`` (``make rollout-locust``) runs, for sync (2 predictor
replicas) and then web-single, ``make load`` for :data:`DURATION`, and once Locust's users
have all been running for :data:`LEAD_S`, ``make rollout`` from another process: version 2,
then (a second load) back to 1. Locust's own results (``loadtests/results/rollout/``) give
the requests, the failures and the seconds in which failures grew; the rollout's lines say
when each replica changed. Writes ``loadtests/reports/rollout-locust.md``.
``make rollout-report`` (``tests/rollout.py``) records the version of every answer instead.
"""

import argparse
import csv
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

from loadtests.measured import load_average

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "loadtests" / "results"
REPORT = ROOT / "loadtests" / "reports" / "rollout-locust.md"
USERS = 16
DURATION = "60s"
LEAD_S = 5.0  # load with every user running before the change starts
START_TIMEOUT_S = 600.0  # make load's own `up` builds images first
#: pattern -> make's replica settings (web-single has one container: its only tier)
PATTERNS = {"sync": ["REPLICAS=2"], "web-single": []}
CHANGES = (("1", "2"), ("2", "1"))


@dataclass
class Run:
    """One ``make load`` with one version change in the middle."""

    pattern: str
    old: str
    new: str
    requests: int
    failed: int
    rps: float
    took_s: float
    failing_s: int  # seconds in which Locust's failure count grew
    load_average: str
    rollout_lines: list[str]

    @property
    def failed_pct(self) -> float:
        """Failed requests, % of all."""
        return 100 * self.failed / self.requests if self.requests else 0.0


def make(*args: str, **popen: object) -> subprocess.Popen[str]:
    """``make --no-print-directory ARGS`` in the checkout, started."""
    return subprocess.Popen(["make", "--no-print-directory", *args], cwd=ROOT, text=True, **popen)


def users_running(history: Path) -> bool:
    """True once Locust's history shows every user spawned."""
    if not history.is_file():
        return False
    with history.open(newline="") as file:
        return any(row.get("User Count") == str(USERS) for row in csv.DictReader(file))


def failing_seconds(history: Path) -> int:
    """Seconds (history rows) in which the total failure count grew."""
    with history.open(newline="") as file:
        totals = [int(row["Total Failure Count"]) for row in csv.DictReader(file)]
    return sum(b > a for a, b in pairwise(totals))


def run_one(pattern: str, old: str, new: str) -> Run:
    """``make load`` on ``pattern`` serving ``old``, rolled to ``new`` :data:`LEAD_S` in."""
    out = f"rollout/{pattern}-{old}-{new}"
    history = RESULTS / f"{out}_stats_history.csv"
    for stale in RESULTS.glob(f"{out}_*"):
        stale.unlink()
    replicas = PATTERNS[pattern]
    load = make(
        "load", f"PATTERN={pattern}", f"MODEL_VERSION={old}", f"USERS={USERS}",
        f"DURATION={DURATION}", f"OUT={out}", *replicas,
    )  # fmt: skip
    deadline = time.monotonic() + START_TIMEOUT_S
    while not users_running(history):
        if load.poll() is not None or time.monotonic() > deadline:
            load.kill()
            raise RuntimeError(f"make load PATTERN={pattern} did not start its users")
        time.sleep(0.5)
    time.sleep(LEAD_S)
    began = time.monotonic()
    rollout = make(
        "rollout", f"PATTERN={pattern}", f"MODEL_VERSION={new}",
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    lines, _ = rollout.communicate()
    took_s = time.monotonic() - began
    if rollout.returncode != 0:
        load.kill()
        raise RuntimeError(f"make rollout PATTERN={pattern} MODEL_VERSION={new}:\n{lines}")
    load.wait()  # Locust exits 1 when a request failed: what web-single's restart shows
    summary_file = RESULTS / f"{out}_summary.json"
    if not summary_file.is_file():
        raise RuntimeError(f"make load PATTERN={pattern} wrote no {summary_file.name}")
    summary = json.loads(summary_file.read_text())
    total = next(row for row in summary["rows"] if row["name"] == "Aggregated")
    return Run(
        pattern, old, new, total["requests"], total["failures"], total["rps"], took_s,
        failing_seconds(history), load_average(),
        [line for line in lines.splitlines() if line.startswith("[")],
    )  # fmt: skip


def row(r: Run) -> str:
    """One run's row of the report's table."""
    return (
        f"| {r.pattern} | {r.old} -> {r.new} | {r.requests} | {r.failed} | {r.failed_pct:.2f} "
        f"| {r.rps:.0f} | {r.took_s:.1f} | {r.failing_s} | {r.load_average} |"
    )


def markdown(runs: list[Run], when: str) -> str:
    """The report."""
    lines = [
        "# Rolling update under `make load` (Locust)",
        "",
        "Generated by `make rollout-locust` (loadtests/bench/rollout_locust.py); do not edit.",
        f"{when}, one run after the other. Each row: `make load PATTERN=<p> USERS={USERS} "
        f"DURATION={DURATION}` (no think time, one row per request; sync with `REPLICAS=2`) "
        f"and, {LEAD_S:.0f} s after all users run, `make rollout PATTERN=<p> "
        "MODEL_VERSION=<new>` from another process. Figures from Locust's own results; "
        "*failing* counts the seconds in which Locust's failure count grew. Which version "
        "answered each request, second by second: `rollout.md` (`make rollout-report`).",
        "",
        "| pattern | change | requests | failed | failed % | req/s | change took (s) "
        "| failing (s) | load average at the end (1, 5, 15 min) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    lines += [row(r) for r in runs]
    for r in runs:
        if r.rollout_lines:
            lines += ["", f"The rollout's own lines ({r.pattern}, {r.old} -> {r.new}):", "", "```"]
            lines += [*r.rollout_lines, "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run every pattern's changes, write the report, take the stacks down."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("patterns", nargs="*", help=f"any of {', '.join(PATTERNS)} (default: both)")
    args = parser.parse_args(argv)
    if unknown := set(args.patterns) - set(PATTERNS):
        parser.error(
            f"unknown pattern(s) {', '.join(sorted(unknown))}; choose from {', '.join(PATTERNS)}"
        )
    args.patterns = args.patterns or list(PATTERNS)
    started = datetime.now(UTC)
    runs: list[Run] = []
    for pattern in args.patterns:
        try:
            for old, new in CHANGES:
                runs.append(run_one(pattern, old, new))
                print(row(runs[-1]), flush=True)
        finally:  # the next pattern's api takes the same port
            make("down", f"PATTERN={pattern}", "WIPE=1", stdout=subprocess.DEVNULL).wait()
    when = f"{started:%Y-%m-%d %H:%M}-{datetime.now(UTC):%H:%M} UTC"
    REPORT.write_text(markdown(runs, when))
    print(f"Report: {REPORT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
