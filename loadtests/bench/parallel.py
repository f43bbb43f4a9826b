"""Does the parallel pattern's latency track its slowest member, or the sum of them?

    make bench-parallel                      # or: python -m loadtests.bench.parallel --port 8000

Brings the parallel stack up (``compose/compose.sh``), then for each delay
(0, 50 and 100 ms by default) makes the ``iris-forest`` predictor answer that
much later (its ``DELAY_MS``, a setting for demonstrations only), and last
makes every member 50 ms late. For each, it sends sequential
``POST /predict`` requests of one row from the host and prints the p50 and
p99 of the whole request beside the p50 of the slowest member's call and of
the sum of all members' calls (what calling them one after the other would
cost), as the api measured them. Leaves the stack up, with no delay.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

__all__ = ["DelayRun", "format_table", "main", "percentile"]

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE = [str(REPO_ROOT / "compose" / "compose.sh"), "-f", "patterns/parallel/compose.yaml"]
SLOWED = "iris-forest"
#: The compose variables that set each member's predictor's DELAY_MS.
DELAY_VARIABLES = {
    "iris": "LINEAR_DELAY_MS",
    "iris-forest": "FOREST_DELAY_MS",
    "iris-bayes": "BAYES_DELAY_MS",
}
BODY = b'{"instances": [[6.3, 2.8, 5.1, 1.5]]}'


def percentile(values: Sequence[float], pct: float) -> float:
    """The nearest-rank ``pct`` percentile of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


@dataclass
class DelayRun:
    """The timings (ms) of one setting's requests: whole requests, and each member's call."""

    delays: str
    requests: list[float]
    members: list[dict[str, float]]

    def row(self) -> list[str]:
        """The table row: delay, request p50/p99, slowest member p50, sum p50, then each member."""
        slowest = [max(m.values()) for m in self.members]
        total = [sum(m.values()) for m in self.members]
        names = list(self.members[0])
        cells = [
            percentile(self.requests, 50),
            percentile(self.requests, 99),
            percentile(slowest, 50),
            percentile(total, 50),
            *(percentile([m[name] for m in self.members], 50) for name in names),
        ]
        return [self.delays, *(f"{value:.1f}" for value in cells)]


def format_table(runs: Sequence[DelayRun]) -> str:
    """A markdown table of the runs (times in ms)."""
    names = list(runs[0].members[0])
    header = [
        "delay (DELAY_MS)",
        "request p50",
        "request p99",
        "slowest member p50",
        "sum of members p50",
        *(f"{name} p50" for name in names),
    ]
    lines = [header, ["---:"] * len(header), *(run.row() for run in runs)]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def compose(*args: str, **env: str) -> None:
    """``docker compose`` on the parallel stack, with ``env`` on top of ours."""
    subprocess.run([*COMPOSE, *args], cwd=REPO_ROOT, env={**os.environ, **env}, check=True)


def measure(client: httpx.Client, delays: str, count: int, warmup: int) -> DelayRun:
    """``count`` sequential requests (after ``warmup`` unrecorded ones)."""
    run = DelayRun(delays, [], [])
    for i in range(warmup + count):
        started = time.perf_counter()
        answer = client.post("/predict", content=BODY)
        elapsed_ms = (time.perf_counter() - started) * 1000
        answer.raise_for_status()
        body = answer.json()
        if body["members"]["left_out"]:
            raise RuntimeError(f"a member was left out: {body['members']['left_out']}")
        if i >= warmup:
            run.requests.append(elapsed_ms)
            run.members.append({m["member"]: m["ms"] for m in body["members"]["answered"]})
    return run


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("API_PORT", "8000")))
    parser.add_argument("--delays", default="0,50,100", help=f"ms on {SLOWED}, comma-separated")
    parser.add_argument("--all", type=int, default=50, help="then ms on every member (0: skip)")
    parser.add_argument("--requests", type=int, default=200, help="per setting")
    parser.add_argument("--warmup", type=int, default=20, help="per setting, not counted")
    args = parser.parse_args(argv)
    settings = [
        (f"{SLOWED} +{delay} ms", {DELAY_VARIABLES[SLOWED]: delay})
        for delay in (int(d) for d in args.delays.split(","))
    ]
    if args.all:
        settings.append(
            (f"every member +{args.all} ms", dict.fromkeys(DELAY_VARIABLES.values(), args.all))
        )
    env = {"API_PORT": str(args.port), "PREDICT_TIMEOUT_S": "2.0"}
    runs = []
    with httpx.Client(base_url=f"http://127.0.0.1:{args.port}", timeout=10) as client:
        for label, delays in settings:
            delay_env = {name: str(delays.get(name, 0)) for name in DELAY_VARIABLES.values()}
            compose("up", "--build", "--wait", "--remove-orphans", **delay_env, **env)
            runs.append(measure(client, label, args.requests, args.warmup))
            print(f"{label}: done", file=sys.stderr)
    compose("up", "--wait", "--remove-orphans", API_PORT=str(args.port))
    print(format_table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
