"""Submit latency alone and in company: async apis side by side, in one run, one report.

    python -m loadtests.bench.event_loop --target before=http://127.0.0.1:18201 \\
        --target after=http://127.0.0.1:18200 --out loadtests/reports/event-loop.md

For each target (an async pattern's api; several stacks up at once, e.g. two
image tags), in turns so that every target sees the same minutes of a shared
machine: ``SEQUENTIAL`` submits one after another from one client, then an
open-loop load (:mod:`loadtests.openloop`) of ``--rate`` submits/s over
``--clients`` keep-alive connections for ``--seconds``. An api that waits on
Redis inside its event loop answers concurrent submits one after another, so
its latency in company grows well past its latency alone; one that awaits
Redis keeps them close. The report gives p50 and p99 of each, the ratio of the
p50s, the load average and the command.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from loadtests.measured import load_average
from loadtests.openloop import check_url, open_loop, percentile

BODY = b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}'
SEQUENTIAL = 200


async def sequential(url: str, count: int) -> list[float]:
    """Latencies (ms) of ``count`` submits sent one after another on one connection."""
    check_url(url)
    latencies = []
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        for _ in range(count):
            started = time.monotonic()
            async with session.post(url, data=BODY, headers=headers) as answer:
                await answer.read()
                if answer.status != 202:
                    raise RuntimeError(f"{url} answered {answer.status}, not 202")
            latencies.append((time.monotonic() - started) * 1000)
    return latencies


async def measure(target: str, args: argparse.Namespace) -> dict[str, Any]:
    """One target's sequential and open-loop figures."""
    url = f"{target}/predict"
    alone = await sequential(url, SEQUENTIAL)
    tally = await open_loop(url, BODY, args.rate, args.seconds, connections=args.clients)
    summary = tally.summary(args.seconds)
    return {
        "seq_p50": percentile(alone, 0.5),
        "seq_p99": percentile(alone, 0.99),
        "load_p50": summary["accepted_p50_ms"],
        "load_p99": summary["accepted_p99_ms"],
        "goodput": summary["goodput_per_s"],
        "statuses": summary["statuses"],
    }


def _merge(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """A target's figures over rounds: the median round of each figure."""
    merged: dict[str, Any] = {}
    for key in ("seq_p50", "seq_p99", "load_p50", "load_p99", "goodput"):
        values = sorted(r[key] for r in rounds)
        merged[key] = values[len(values) // 2]
    merged["statuses"] = [r["statuses"] for r in rounds]
    return merged


def markdown(results: dict[str, dict[str, Any]], args: argparse.Namespace, loads: str) -> str:
    """The report."""
    lines = [
        "# async submit latency: alone and with 8 clients at a fixed rate",
        "",
        f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by "
        "`python -m loadtests.bench.event_loop " + " ".join(sys.argv[1:]) + "`.",
        "",
        f"Settings: {SEQUENTIAL} sequential `POST /predict` (one client, one row), then an open "
        f"loop of {args.rate:g} submits/s over {args.clients} keep-alive connections for "
        f"{args.seconds:g} s; targets in turns, {args.rounds} round(s), the median round "
        "shown. From the host to the api's published port on 127.0.0.1; each stack with its "
        "default workers (2), which run the jobs meanwhile.",
        "",
        f"Load average (1, 5, 15 min) before and after: {loads}. The machine (2 cores) is "
        "shared: compare the rows with each other, not with other reports.",
        "",
        "| target | sequential p50 | sequential p99 | 8 clients p50 | 8 clients p99 "
        "| p50 ratio (8 clients / sequential) | goodput/s | statuses per round |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        ratio = r["load_p50"] / r["seq_p50"] if r["seq_p50"] else float("nan")
        lines.append(
            f"| {name} | {r['seq_p50']:.2f} ms | {r['seq_p99']:.2f} ms | {r['load_p50']:.2f} ms "
            f"| {r['load_p99']:.2f} ms | {ratio:.2f} | {r['goodput']:.0f} | {r['statuses']} |"
        )
    lines += [
        "",
        "Goals (issue 24): p99 under 10 ms at 200 submits/s from 8 clients; the p50 with 8 "
        "clients within 1.5x the sequential p50.",
        "",
    ]
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Every round, every target in turn."""
    targets = dict(t.split("=", 1) for t in args.target)
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
    for _ in range(args.rounds):
        for name, url in targets.items():
            rounds[name].append(await measure(url, args))
    return {name: _merge(r) for name, r in rounds.items()}


def main(argv: list[str] | None = None) -> int:
    """Measure, print and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--target", action="append", required=True, help="name=http://127.0.0.1:PORT"
    )
    parser.add_argument("--rate", type=float, default=200.0, help="submits/s of the open loop")
    parser.add_argument("--clients", type=int, default=8, help="connections of the open loop")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the open loop")
    parser.add_argument("--rounds", type=int, default=3, help="turns over the targets")
    parser.add_argument("--out", type=Path, help="write the markdown report here")
    args = parser.parse_args(argv)
    before = load_average()
    results = asyncio.run(run(args))
    report = markdown(results, args, f"{before} / {load_average()}")
    print(report)
    if args.out:
        args.out.write_text(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
